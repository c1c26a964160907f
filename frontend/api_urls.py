from django.urls import path

from frontend.apis import LabelContextApi, SessionApi

urlpatterns = [
    path("auth/session/", SessionApi.as_view(), name="auth-session"),
    path("label-context/", LabelContextApi.as_view(), name="label-context"),
]
