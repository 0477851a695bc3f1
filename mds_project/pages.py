"""The pages a person opens in a browser: ``/``, a landing page with where to go next, and the API docs, which
send a visitor who is not logged in to the login page instead of answering a bare 401."""

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.shortcuts import render
from django.urls import reverse
from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerView
from rest_framework.exceptions import AuthenticationFailed, NotAuthenticated
from rest_framework.views import APIView

from registry_mirror import gateway


def home(request):
    # A link to an MLflow UI nobody started (plain runserver) is shown as such, with the command that starts one.
    return render(
        request,
        "mds/home.html",
        {"mlflow_ui": gateway.ui_status(), "model_name": settings.MDS_DEFAULT_MODEL_NAME},
    )


class LoginFirst(APIView):
    """A docs page for a browser not logged in: the admin's login page, which comes back here afterwards.

    A client that sent credentials which failed still gets the 401 that names why.
    """

    def handle_exception(self, exc):
        browser = "HTTP_AUTHORIZATION" not in self.request.META and not self.request.user.is_authenticated
        if browser and isinstance(exc, NotAuthenticated | AuthenticationFailed):
            return redirect_to_login(self.request.get_full_path(), login_url=reverse("admin:login"))
        return super().handle_exception(exc)


class SwaggerDocs(LoginFirst, SpectacularSwaggerView):
    pass


class RedocDocs(LoginFirst, SpectacularRedocView):
    pass
