"""The ``battloop`` command: a thin entry point over Django management commands.

``battloop VERB ...`` runs the management command VERB (``-`` becomes ``_``), so
``battloop import-packs FILE`` is ``import_packs``. ``battloop --help`` lists the verbs
battloop provides, with their one-line descriptions.
"""

from __future__ import annotations

import os
import sys

# Django verbs a user of battloop needs besides battloop's own.
_DJANGO_VERBS = ("migrate", "createsuperuser", "changepassword", "check", "dbshell", "shell", "showmigrations")
# Verbs that must work before the database exists or while it is being set up.
_NO_AUTO_MIGRATE = {"migrate", "makemigrations", "showmigrations", "check", "demo", "dbshell", "shell", "help"}


def _setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "battloop.config.settings")
    import django

    django.setup()


def _verbs() -> dict[str, tuple[str, str]]:
    from django.core.management import get_commands, load_command_class

    verbs = {}
    for name, app in sorted(get_commands().items()):
        if app.startswith("battloop.") or name in _DJANGO_VERBS:
            try:
                help_text = (load_command_class(app, name).help or "").strip().splitlines()[0]
            except Exception as exc:  # a broken command must not hide the others
                help_text = f"(unavailable: {exc})"
            verbs[name.replace("_", "-")] = (name, help_text)
    return verbs


def ensure_migrated(verbosity: int = 0) -> None:
    """Bring the database schema up to date (a fresh data directory just works)."""
    from django.core.management import call_command
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    if executor.migration_plan(executor.loader.graph.leaf_nodes()):
        call_command("migrate", verbosity=verbosity, interactive=False)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "demo":
        # The demo builds its own instance; the data directory must be known before settings load.
        for i, arg in enumerate(argv):
            if arg == "--data-dir" and i + 1 < len(argv):
                os.environ["BATTLOOP_DATA_DIR"] = argv[i + 1]
            elif arg.startswith("--data-dir="):
                os.environ["BATTLOOP_DATA_DIR"] = arg.split("=", 1)[1]
        os.environ.setdefault("BATTLOOP_DATA_DIR", os.path.abspath("battloop-demo"))
    _setup()
    verbs = _verbs()
    if not argv or argv[0] in ("-h", "--help", "help"):
        from battloop import __version__

        print(f"battloop {__version__} — lifecycle of telecom lithium backup batteries\n")
        print("usage: battloop VERB [options]   (battloop VERB --help for a verb's options)\n\nverbs:")
        width = max(len(v) for v in verbs)
        for verb, (_name, help_text) in verbs.items():
            print(f"  {verb:<{width}}  {help_text}")
        return 0
    if argv[0] in ("-V", "--version"):
        from battloop import __version__

        print(__version__)
        return 0
    verb = argv[0]
    if verb not in verbs and verb.replace("_", "-") not in verbs:
        print(f"battloop: unknown verb {verb!r}; run 'battloop --help' for the list", file=sys.stderr)
        return 2
    name = verbs.get(verb, verbs.get(verb.replace("_", "-")))[0]
    if name not in _NO_AUTO_MIGRATE and not any(a in ("-h", "--help") for a in argv[1:]):
        ensure_migrated()
    from django.core.management import ManagementUtility

    utility = ManagementUtility(["battloop", name, *argv[1:]])
    utility.prog_name = "battloop"
    try:
        utility.execute()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
