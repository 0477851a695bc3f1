"""The compiled forest walk (inference/forest_walk.c), the package's one extension; everything else is in
pyproject.toml.

A plain shared library that inference/compiled_forest.py loads with ctypes, optional: without a C compiler the
install goes on and scikit-learn's own (slower) walk serves. ``-ffp-contract=off``: fused multiply-adds would round
otherwise than numpy does.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "inference._forest_walk",
            sources=["inference/forest_walk.c"],
            extra_compile_args=["-O3", "-ffp-contract=off"],
            optional=True,
        )
    ]
)
