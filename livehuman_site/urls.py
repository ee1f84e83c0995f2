"""URL routes: admin, login/logout, tenant switch, the chat page, REST API and its docs."""

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import include, path
from django.utils.translation import gettext_lazy as _
from django.views.generic import RedirectView

from livehuman_site.metrics import metrics_view
from livehuman_site.tenancy.views import switch_tenant_view, tenant_media_view
from sessions_app.views import chat_page

admin.site.site_header = _("LiveHuman administration")
admin.site.site_title = "LiveHuman"
admin.site.index_title = _("Dashboard")

urlpatterns = [
    path("", chat_page, name="home"),
    path("chat/", chat_page, name="chat"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("tenant/switch/", switch_tenant_view, name="switch_tenant"),
    path("i18n/", include("django.conf.urls.i18n")),
    # Browsers ask every page's origin for /favicon.ico (the admin's and DRF's pages link none): answer with ours.
    path("favicon.ico", RedirectView.as_view(url=static("livehuman/favicon.svg")), name="favicon"),
    path("admin/", admin.site.urls),
    path("metrics", metrics_view, name="metrics"),  # Prometheus's default path; bearer token (METRICS_TOKEN)
    path("api/v1/", include("livehuman_site.api_urls")),  # includes the schema and docs pages
    # A tenant's uploads, to that tenant only (tenancy.views.tenant_media_view).
    path(f"{settings.MEDIA_URL.strip('/')}/<path:path>", tenant_media_view, name="tenant_media"),
]
