from django.contrib import admin

from series.models import Frame, FrameVersion, Series


class FrameInline(admin.TabularInline):
    model = Frame
    extra = 0
    fields = ("index", "prompt", "aspect_ratio", "needs_run", "attempts", "run_cause")
    readonly_fields = ("index", "prompt", "aspect_ratio", "needs_run", "attempts", "run_cause")
    can_delete = False


@admin.register(Series)
class SeriesAdmin(admin.ModelAdmin):
    list_display = ["id", "tenant", "name", "status", "consistency", "created_at"]
    list_filter = ["status", "consistency"]
    list_select_related = ["tenant"]
    search_fields = ["id", "name", "tenant__slug"]
    readonly_fields = ["id", "tenant", "api_key", "created_by", "created_at", "finished_at"]
    inlines = [FrameInline]


@admin.register(FrameVersion)
class FrameVersionAdmin(admin.ModelAdmin):
    list_display = ["frame", "number", "cause", "job", "created_at"]
    list_select_related = ["frame", "job"]
    raw_id_fields = ["frame", "job"]
