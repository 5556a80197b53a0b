from django.urls import include, path

urlpatterns = [
    path("", include("tom_common.urls")),
    path("alerts/", include("tom_alerts.urls", namespace="alerts")),
]
