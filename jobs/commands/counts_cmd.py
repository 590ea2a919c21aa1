"""`gluteflow counts`: messages per topic and dead letters by reason."""

from __future__ import annotations

import typer
from rich.table import Table

from jobs.console import console, fail, paths_from


def register(app: typer.Typer) -> None:
    @app.command("counts")
    def counts(ctx: typer.Context) -> None:
        """Print how many messages each declared topic holds and the dead letters by reason."""
        from infra import broker, topics
        from infra.inspect_topics import dead_letter_reasons, topic_message_counts
        from schemas.validate import REASONS

        try:
            bootstrap = broker.bootstrap_servers(paths_from(ctx))
            per_topic = topic_message_counts(bootstrap)
            reasons = dead_letter_reasons(bootstrap)
        except broker.BrokerError as exc:
            fail(str(exc))
        except RuntimeError as exc:  # topic missing / stalled read
            fail(f"{exc} (run `gluteflow topics apply` first?)")

        table = Table(title=f"topics at {bootstrap}")
        table.add_column("key")
        table.add_column("topic")
        table.add_column("messages", justify="right")
        for key in topics.declared():
            name = topics.topic(key)
            table.add_row(key, name, f"{per_topic.get(name, 0):,}")
        console.print(table)

        dl = Table(title="dead letters by reason")
        dl.add_column("reason")
        dl.add_column("count", justify="right")
        dl.add_column("meaning")
        for reason, n in reasons.most_common():
            dl.add_row(reason, f"{n:,}", REASONS.get(reason, ""))
        if not reasons:
            dl.add_row("-", "0", "no dead letters")
        console.print(dl)
