from django.contrib import admin

from .models import ImportBatch, Organization, Pack, PackEvent, PackModel, Site


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "kind", "province", "recycler_whitelisted")
    list_filter = ("kind", "recycler_whitelisted")
    search_fields = ("code", "name")


@admin.register(Site)
class SiteAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "site_type", "province", "prefecture", "owner")
    list_filter = ("site_type", "province")
    search_fields = ("code", "name", "prefecture")
    list_select_related = ("owner",)


@admin.register(PackModel)
class PackModelAdmin(admin.ModelAdmin):
    list_display = ("code", "oem", "chemistry", "nominal_voltage_v", "rated_capacity_ah", "energy_kwh")
    list_filter = ("chemistry", "oem")


class PackEventInline(admin.TabularInline):
    model = PackEvent
    fields = ("seq", "kind", "occurred_at", "actor", "organization", "place", "payload", "hash")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Pack)
class PackAdmin(admin.ModelAdmin):
    list_display = ("serial", "model", "state", "site", "owner", "custodian", "record_grade")
    list_filter = ("state", "record_grade", "origin", "model__chemistry")
    search_fields = ("serial", "code")
    list_select_related = ("model", "site", "owner", "custodian")
    inlines = [PackEventInline]
    # State, site, custody and ownership are projections of the event chain: read-only here.
    readonly_fields = ("state", "site", "owner", "custodian", "location", "event_count", "last_event_hash", "import_batch", "source_row", "row_hash")
    raw_id_fields = ("original_pack",)

    def has_delete_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return False  # packs enter through import or the API, which write their first event


@admin.register(PackEvent)
class PackEventAdmin(admin.ModelAdmin):
    list_display = ("pack", "seq", "kind", "occurred_at", "actor", "organization")
    list_filter = ("kind",)
    search_fields = ("pack__serial",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ImportBatch)
class ImportBatchAdmin(admin.ModelAdmin):
    list_display = ("id", "kind", "file_name", "status", "rows_total", "rows_applied", "rows_unchanged", "rows_quarantined", "started_at")
    list_filter = ("kind", "status")

    def has_change_permission(self, request, obj=None):
        return False
