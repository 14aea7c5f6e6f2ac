"""The editor's desk in the run store: incident ids that last, their change log, and decisions.

The tables (migration ``m004_editors_desk``) live in ``triangulate.sqlite`` beside the run's
own. A folder written by ``triangulate reconcile`` gets a run store for them too; it holds no
extraction run, so the folder stays a reconcile folder (:attr:`RunFolder.kind`).

Decisions are append-only: a new decision on the same field is a new row, and the latest wins
when decisions are applied (``pipeline.reconcile.decide``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pipeline.store.runstore import RunStore
from schemas.desk import Decision, IncidentChange


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


class Desk:
    """Reads and writes the desk tables of one run store."""

    def __init__(self, store: RunStore) -> None:
        self.store = store
        self._db = store.connection

    # -- incident ids --

    def members(self) -> dict[str, str]:
        """Article id -> the incident it was last put in."""
        rows = self._db.execute("SELECT article_id, incident_id FROM incident_members")
        return {str(row["article_id"]): str(row["incident_id"]) for row in rows}

    def known_ids(self) -> dict[str, dict[str, Any]]:
        """Every incident id ever given out: its creation time, state and, if merged, where to."""
        rows = self._db.execute("SELECT rowid, id, created_at, state, merged_into FROM incident_ids")
        return {
            str(row["id"]): {
                "created_at": str(row["created_at"]),
                # Ids created within the same second keep their creation order.
                "order": int(row["rowid"]),
                "state": str(row["state"]),
                "merged_into": row["merged_into"],
            }
            for row in rows
        }

    def resolve(self, incident_id: str) -> str:
        """The id an incident goes by now: a merged id leads to the incident it was merged into."""
        known = self.known_ids()
        seen: set[str] = set()
        current = incident_id
        while current in known and known[current]["merged_into"] and current not in seen:
            seen.add(current)
            current = str(known[current]["merged_into"])
        return current

    def save_ids(
        self,
        members: Mapping[str, str],
        created: Sequence[str],
        merged: Mapping[str, str],
        changes: Sequence[IncidentChange],
    ) -> None:
        """Record one reconcile's outcome in one transaction: the membership it settled, the ids it
        created, the ids merged into others, and the changes."""
        at = now().isoformat()
        with self.store._transaction() as db:
            db.execute("DELETE FROM incident_members")
            db.executemany(
                "INSERT INTO incident_members (article_id, incident_id) VALUES (?, ?)",
                sorted(members.items()),
            )
            db.executemany(
                "INSERT OR IGNORE INTO incident_ids (id, created_at) VALUES (?, ?)",
                [(incident_id, at) for incident_id in created],
            )
            db.executemany(
                "UPDATE incident_ids SET state = 'merged', merged_into = ? WHERE id = ?",
                [(into, old) for old, into in merged.items()],
            )
            db.executemany(
                "INSERT INTO incident_changes (at, incident_id, change, detail, article_ids_json, "
                "other_incident) VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (
                        change.at.isoformat(),
                        change.incident_id,
                        change.change,
                        change.detail,
                        json.dumps(change.article_ids),
                        change.other_incident,
                    )
                    for change in changes
                ],
            )

    def changes(self, incident_id: str | None = None) -> list[IncidentChange]:
        sql = "SELECT * FROM incident_changes"
        params: tuple[Any, ...] = ()
        if incident_id is not None:
            sql += " WHERE incident_id = ? OR other_incident = ?"
            params = (incident_id, incident_id)
        rows = self._db.execute(sql + " ORDER BY seq", params)
        return [
            IncidentChange(
                seq=row["seq"],
                at=datetime.fromisoformat(row["at"]),
                incident_id=row["incident_id"],
                change=row["change"],
                detail=row["detail"],
                article_ids=json.loads(row["article_ids_json"]),
                other_incident=row["other_incident"],
            )
            for row in rows
        ]

    # -- decisions --

    def add_decision(self, decision: Decision) -> Decision:
        """Append ``decision``; returns it with its sequence number."""
        with self.store._transaction() as db:
            cursor = db.execute(
                "INSERT INTO decisions (at, by, incident_id, action, field_path, value_json, note, "
                "other_incident, article_ids_json, evidence_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    decision.at.isoformat(),
                    decision.by,
                    decision.incident_id,
                    decision.action,
                    decision.field_path,
                    json.dumps(decision.value, ensure_ascii=False),
                    decision.note,
                    decision.other_incident,
                    json.dumps(decision.article_ids),
                    json.dumps(decision.evidence, ensure_ascii=False),
                ),
            )
            seq = cursor.lastrowid
        return decision.model_copy(update={"seq": seq})

    def decisions(self) -> list[Decision]:
        rows = self._db.execute("SELECT * FROM decisions ORDER BY seq")
        return [
            Decision(
                seq=row["seq"],
                at=datetime.fromisoformat(row["at"]),
                by=row["by"],
                incident_id=row["incident_id"],
                action=row["action"],
                field_path=row["field_path"],
                value=json.loads(row["value_json"]),
                note=row["note"],
                other_incident=row["other_incident"],
                article_ids=json.loads(row["article_ids_json"]),
                evidence=json.loads(row["evidence_json"]),
            )
            for row in rows
        ]
