import datetime as dt

from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .models import AuditEntry, record

MAX_FAILURES = 5
WINDOW = dt.timedelta(minutes=15)


class ThrottledAuthenticationForm(AuthenticationForm):
    """Login with throttling: after 5 failures for a user name or from an address within
    15 minutes, further attempts are refused until the window passes."""

    def clean(self):
        username = (self.data.get("username") or "")[:150]
        ip = self.request.META.get("REMOTE_ADDR") if self.request else None
        since = timezone.now() - WINDOW
        recent = AuditEntry.objects.filter(action="login_failed", at__gte=since)
        if recent.filter(username=username).count() >= MAX_FAILURES or (ip and recent.filter(ip=ip).count() >= 4 * MAX_FAILURES):
            raise ValidationError(_("Too many failed attempts. Try again in 15 minutes."), code="throttled")
        try:
            return super().clean()
        except ValidationError:
            record("login_failed", username=username, ip=ip)
            raise
