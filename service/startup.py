"""Start-up configuration check: every setting, the knowledge file, the trusted clients and the
database, in one line."""

from __future__ import annotations

from service.config import ConfigError, Settings


def check_configuration(settings: Settings, *, connect_database: bool = False) -> list[str]:
    """What was checked, one line each; raises ConfigError (one line: the variable or file, the
    entry, the problem) before the server listens.

    A database that cannot be reached is reported, not refused: the service degrades.
    """
    from hooks.knowledge import KnowledgeError, load_knowledge
    from hooks.services import build_services
    from service import trusted_clients

    settings.check()
    lines = [f"settings: authentication {settings.auth}, database {settings.database_backend}"]
    try:
        knowledge = load_knowledge(settings.knowledge_path)
        build_services(knowledge)  # the knowledge file's rules and the rule registry must agree
    except (
        KnowledgeError
    ) as error:  # unreadable, not JSON, against the schema, a broken cross reference: one line
        raise ConfigError(f"BONECDS_KNOWLEDGE_FILE {error.where}: {error.problem}") from None
    except (KeyError, TypeError, ValueError) as error:
        where = settings.knowledge_path or "bundled knowledge file"
        problem = f"missing {error}" if isinstance(error, KeyError) else str(error).splitlines()[0]
        raise ConfigError(f"BONECDS_KNOWLEDGE_FILE {where}: {problem}") from None
    lines.append(f"knowledge: version {knowledge.version} ({settings.knowledge_path or 'bundled'})")
    if settings.auth != "off":
        clients = trusted_clients(settings)
        lines.append(f"trusted clients: {len(clients)} issuer(s), every pinned key loads")
    if connect_database:
        lines.append(f"database: {_database_reachable(settings)}")
    return lines


def _database_reachable(settings: Settings) -> str:
    from service.store import store_for

    try:
        store_for(settings).check_ready()
        return "reachable"
    except (
        Exception
    ) as error:  # reported, not raised: a database outage must not keep the safety checks off
        return (
            f"NOT reachable ({type(error).__name__}; the service starts and degrades: see README)"
        )
