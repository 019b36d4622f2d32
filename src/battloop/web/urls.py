from django.contrib.auth.views import LogoutView
from django.urls import path

from . import views, views_health, views_logistics, views_triage

app_name = "web"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", LogoutView.as_view(next_page="/login/"), name="logout"),
    path("packs/", views.pack_list, name="packs"),
    path("packs/<str:serial>/", views.pack_detail, name="pack"),
    path("packs/<str:serial>/transition/", views.pack_transition, name="pack_transition"),
    path("sites/<str:code>/", views.site_detail, name="site"),
    path("map/", views.map_page, name="map"),
    path("map/data/", views.map_data, name="map_data"),
    path("imports/", views.imports_page, name="imports"),
    path("imports/<int:job_id>/", views.import_detail, name="import_detail"),
    path("imports/<int:job_id>/quarantine.csv", views.import_quarantine, name="import_quarantine"),
    path("outlook/", views_health.health_outlook, name="outlook"),
    path("triage/", views_triage.triage_queue, name="triage"),
    path("logistics/", views_logistics.plan_page, name="logistics"),
    path("logistics/shipments/<str:code>/", views_logistics.shipment_detail, name="logistics_shipment"),
    path("audit/", views.audit_log, name="audit"),
    path("tokens/", views.tokens, name="tokens"),
]
