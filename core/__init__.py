"""What the apps share: errors, the CSV contract, MLflow names, request helpers and the abstract base model.

``core`` imports no app of this project; ``errors``, ``tabular`` and ``contract`` import no Django either, so
the pure ML code can use them.
"""
