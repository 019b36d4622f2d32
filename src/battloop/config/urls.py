from django.contrib import admin
from django.urls import include, path

from battloop.web.api import api

admin.site.site_header = "battloop"
admin.site.site_title = "battloop"
admin.site.index_title = "Reference data"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", api.urls),
    path("i18n/", include("django.conf.urls.i18n")),
    path("", include("battloop.web.urls")),
]
