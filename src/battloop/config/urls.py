from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView

admin.site.site_header = "battloop"
admin.site.site_title = "battloop"
admin.site.index_title = "Registry"

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
]
