"""A hand-written run over examples/tempe-traffic-stop, for the export and report tests.

The records are what a careful human extractor would write for each article
(values, verbatim quotes, attributions), not model output. Grounding and
speakers are computed by the real pipeline.evidence.ground, and the run directory is
written with the real run store and reconciler, so these tests exercise the
same files a `triangulate run` leaves behind.

One quote is deliberately a paraphrase that is not in its article (article 02,
what.circumstances) so the "not found in article" path is always exercised.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from pipeline.evidence.ground import ground_record
from pipeline.ingest.sources import iter_sources
from schemas import Article, IncidentRecord, Provenance

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_DIR = REPO / "examples" / "tempe-traffic-stop"

# The paraphrase a weak model might cite: not present in article 02.
UNFOUND_QUOTE = "Agents surrounded the stopped van and fired into it"

DHS_STATEMENT = (
    "During a targeted vehicle stop, the suspect accelerated toward the agent and struck him with "
    "the vehicle. Fearing for his life, the agent fired defensive shots."
)


def c(value: Any, quote: str, attribution: str = "outlet") -> dict[str, Any]:
    return {"value": value, "quote": quote, "attribution": attribution}


def whitfield(quote: str = DHS_STATEMENT) -> dict[str, Any]:
    return {"speaker": "Carla Whitfield", "affiliation": "DHS", "quote": quote}


FACTS: dict[str, dict[str, Any]] = {
    "01-valley-ledger.md": {
        "when": {
            "date": c(
                "2026-03-13", "in Tempe on Friday morning, federal officials said", "federal officials"
            ),
            "time_of_day": c("7:30 a.m.", "The shooting happened around 7:30 a.m.", "Tempe police"),
            "raw_phrase": c("Friday morning", "on Friday morning", "federal officials"),
            "precision": "day",
        },
        "where": {
            "place": c(
                "Apache Boulevard and McClintock Drive",
                "near Apache Boulevard and McClintock Drive",
                "Tempe police",
            ),
            "city": c("Tempe", "during a vehicle stop in Tempe on Friday morning", "federal officials"),
            "precision": "address",
        },
        "what": {
            "event_type": c(
                "shooting", "A U.S. Border Patrol agent shot and killed a driver", "federal officials"
            ),
            "operation_name": c(
                "Operation Sonoran Sweep", "the stop was part of Operation Sonoran Sweep", "DHS"
            ),
        },
        "agencies": [
            {"name": c("U.S. Border Patrol", "A U.S. Border Patrol agent shot and killed a driver")},
            {"name": c("Department of Homeland Security", "The Department of Homeland Security said")},
            {"name": c("Tempe police", "according to Tempe police")},
            {"name": c("FBI", "The FBI is investigating the shooting")},
        ],
        "subjects": [
            {
                "name": c(
                    "Rafael Quintero-Alvarez",
                    "identified by relatives as Rafael Quintero-Alvarez, 34",
                    "relatives",
                ),
                "age": c(34, "identified by relatives as Rafael Quintero-Alvarez, 34", "relatives"),
                "gender": c("male", "her brother drove a delivery van", "Lucia Quintero"),
                "armed_with": c(
                    "vehicle",
                    "the suspect accelerated toward the agent and struck him with the vehicle",
                    "DHS spokesperson Carla Whitfield",
                ),
                "outcome": c(
                    "killed", "A U.S. Border Patrol agent shot and killed a driver", "federal officials"
                ),
                "place_of_death": c("at the hospital", "where he was pronounced dead at the hospital"),
            }
        ],
        "officers": {
            "count_fired": c("1", "the agent fired defensive shots", "DHS spokesperson Carla Whitfield"),
            "injuries": c("serious injuries", "The agent suffered serious injuries", "DHS"),
            "condition": c("stable condition", "was listed in stable condition on Friday evening", "DHS"),
        },
        "statements": [whitfield()],
    },
    "02-channel9-desert-news.md": {
        "when": {"date": c("2026-03-13", "A man died early Friday"), "precision": "day"},
        "where": {"city": c("Phoenix", "PHOENIX — A man died early Friday"), "precision": "metro"},
        "what": {
            "event_type": c("shooting", "federal agents opened fire during a traffic stop"),
            "circumstances": c("agents fired on a stopped van", UNFOUND_QUOTE),
        },
        "agencies": [{"name": c("Department of Homeland Security", "The Department of Homeland Security")}],
        "subjects": [
            {
                "gender": c("male", "The man, whom officials have not yet named"),
                "outcome": c("killed", "A man died early Friday after federal agents opened fire"),
                "place_of_death": c("at the scene", "died at the scene, according to a witness", "a witness"),
            }
        ],
        "officers": {
            "count_fired": c("plural", "federal agents opened fire during a traffic stop"),
            "injuries": c(
                "several injuries",
                "One agent was taken to a hospital with several injuries",
                "a federal source",
            ),
            "condition": c(
                "stable condition", "is in stable condition, a federal source", "a federal source"
            ),
        },
    },
    "03-continental-wire.md": {
        "when": {
            "date": c("2026-03-13", "fatally shot a 34-year-old driver on Friday", "DHS"),
            "precision": "day",
        },
        "where": {
            "city": c("Tempe", "during a vehicle stop in Tempe, Arizona", "DHS"),
            "state": c("Arizona", "during a vehicle stop in Tempe, Arizona", "DHS"),
            "precision": "city",
        },
        "what": {
            "event_type": c("shooting", "A Border Patrol agent fatally shot a 34-year-old driver", "DHS")
        },
        "agencies": [
            {"name": c("U.S. Border Patrol", "A Border Patrol agent fatally shot")},
            {"name": c("Department of Homeland Security", "the Department of Homeland Security said")},
            {"name": c("FBI", "The FBI has opened an investigation")},
        ],
        "subjects": [
            {
                "name": c(
                    "Rafael Quintero-Alvarez", "DHS identified the man as Rafael Quintero-Alvarez", "DHS"
                ),
                "age": c(34, "fatally shot a 34-year-old driver", "DHS"),
                "gender": c("male", "DHS identified the man as", "DHS"),
                "nationality": c("Mexican", "a Mexican national", "DHS"),
                "status_claimed": c(
                    "in the country illegally", "who the department said was in the country illegally", "DHS"
                ),
                "armed_with": c(
                    "vehicle",
                    "the suspect accelerated toward the agent and struck him with the vehicle",
                    "DHS spokesperson Carla Whitfield",
                ),
                "outcome": c("killed", "A Border Patrol agent fatally shot a 34-year-old driver", "DHS"),
                "place_of_death": c(
                    "at the hospital", "Quintero-Alvarez was pronounced dead at the hospital", "DHS"
                ),
            }
        ],
        "officers": {
            "count_fired": c("1", "According to DHS, the agent fired several rounds.", "DHS"),
            "injuries": c("serious injuries", "The agent was treated for serious injuries", "DHS"),
            "condition": c("stable condition", "is in stable condition", "DHS"),
        },
        "statements": [whitfield()],
    },
    "04-borderlands-observer.md": {
        "when": {"date": c("2026-03-13", "On Friday he became the latest person killed"), "precision": "day"},
        "where": {
            "city": c("Tempe", "waiting at a bus stop across the street in Tempe", "Dolores Ybarra"),
            "state": c("Arizona", "killed by immigration agents in Arizona's crackdown"),
            "precision": "city",
        },
        "what": {"event_type": c("shooting", "they just started shooting", "Dolores Ybarra")},
        "agencies": [
            {"name": c("Department of Homeland Security", "pushed by the Department of Homeland Security")}
        ],
        "subjects": [
            {
                "name": c("Rafael Quintero-Alvares", "Rafael Quintero-Alvares was a father of two"),
                "gender": c("male", "Rafael Quintero-Alvares was a father of two"),
                "armed_with": c("unarmed", "Ybarra said Quintero-Alvares was unarmed.", "Dolores Ybarra"),
                "outcome": c("killed", "On Friday he became the latest person killed by immigration agents"),
            }
        ],
        "officers": {"count_fired": c("1", "The agent who fired was hurt, DHS says", "DHS")},
        "statements": [
            {
                "speaker": "Dolores Ybarra",
                "affiliation": "witness",
                "quote": "The van was barely rolling. "
                "He had both hands on the wheel and they just started shooting",
            }
        ],
    },
    "05-nationwatch-daily.md": {
        "when": {"date": c("2026-03-13", "in the Phoenix area last Friday"), "precision": "day"},
        "where": {"city": c("Phoenix", "killed a man in the Phoenix area"), "precision": "metro"},
        "what": {"event_type": c("shooting", "A Border Patrol agent shot and killed a man")},
        "agencies": [
            {"name": c("U.S. Border Patrol", "A Border Patrol agent shot and killed a man")},
            {"name": c("Department of Homeland Security", "DHS spokesperson Carla Whitfield said")},
        ],
        "subjects": [
            {
                "name": c("Rafael Quintero", "The man, Rafael Quintero, was pronounced dead", "officials"),
                "gender": c("male", "The man, Rafael Quintero", "officials"),
                "armed_with": c(
                    "vehicle",
                    "the suspect accelerated toward the agent and struck him with the vehicle",
                    "DHS spokesperson Carla Whitfield",
                ),
                "outcome": c("killed", "A Border Patrol agent shot and killed a man"),
                "place_of_death": c(
                    "at the hospital", "was pronounced dead at the hospital, officials said", "officials"
                ),
            }
        ],
        "officers": {
            "count_fired": c("1", "the agent fired defensive shots", "DHS spokesperson Carla Whitfield"),
            "injuries": c("multiple injuries", "The agent suffered multiple injuries", "DHS"),
            "condition": c(
                "stable condition", "remains in stable condition, according to the department", "DHS"
            ),
        },
        "statements": [whitfield()],
    },
    "06-ktmp12.html": {
        "when": {
            "date": c("2026-03-13", "died at the scene Friday morning", "Tempe police"),
            "time_of_day": c("morning", "died at the scene Friday morning", "Tempe police"),
            "precision": "day",
        },
        "where": {
            "place": c(
                "Apache Boulevard and McClintock Drive",
                "near Apache Boulevard and McClintock Drive",
                "Tempe police",
            ),
            "city": c("Tempe", "A 34-year-old Tempe man died at the scene", "Tempe police"),
            "precision": "address",
        },
        "what": {
            "event_type": c(
                "shooting", "a Border Patrol agent shot him during a vehicle stop", "Tempe police"
            )
        },
        "agencies": [
            {"name": c("U.S. Border Patrol", "a Border Patrol agent shot him")},
            {"name": c("Tempe police", "Tempe police said they are assisting the FBI")},
            {"name": c("FBI", "the FBI, which is leading the investigation")},
        ],
        "subjects": [
            {
                "name": c(
                    "Rafael Quintero-Alvarez",
                    "Police identified him as Rafael Quintero-Alvarez.",
                    "Tempe police",
                ),
                "age": c(34, "A 34-year-old Tempe man", "Tempe police"),
                "gender": c("male", "A 34-year-old Tempe man", "Tempe police"),
                "outcome": c("killed", "A 34-year-old Tempe man died at the scene", "Tempe police"),
                "place_of_death": c("at the scene", "died at the scene Friday morning", "Tempe police"),
            }
        ],
        "officers": {
            "count_fired": c("1", "One agent fired his weapon, according to police.", "Tempe police"),
            "condition": c("stable condition", "was in stable condition Friday afternoon", "Tempe police"),
        },
    },
}


@dataclass(frozen=True)
class TempeArticles:
    by_file: dict[str, Article]

    @property
    def all(self) -> list[Article]:
        return [self.by_file[name] for name in sorted(self.by_file)]


def load_articles() -> TempeArticles:
    articles: dict[str, Article] = {}
    for item in iter_sources([EXAMPLE_DIR / name for name in sorted(FACTS)]):
        assert isinstance(item, Article), f"example article failed to read: {item}"
        assert item.source_path is not None
        articles[Path(item.source_path).name] = item
    return TempeArticles(articles)


def hand_record(article: Article, facts: dict[str, Any]) -> IncidentRecord:
    """The record a careful human would write for this article, grounded by pipeline.evidence.ground."""
    record = IncidentRecord.model_validate(
        {
            **facts,
            "article_id": article.id,
            "source_path": article.source_path,
            "provenance": Provenance(
                article_id=article.id,
                source_path=article.source_path,
                outlet=article.outlet,
                url=article.url,
                published=article.published,
                model="hand-written",
                provider="fixture",
                attempts=1,
            ),
        }
    )
    return ground_record(record, article)


def hand_records(articles: TempeArticles) -> list[IncidentRecord]:
    return [hand_record(articles.by_file[name], FACTS[name]) for name in sorted(FACTS)]


def write_run(out_dir: Path, records: list[IncidentRecord], articles: list[Article]) -> Path:
    """A run directory as `triangulate run` leaves it: run store, records/failures.jsonl,
    incidents/conflicts.jsonl; written through the real RunStore and reconciler."""
    from pipeline.reconcile.merge import reconcile, write_outputs
    from pipeline.store.runstore import RunStore, cache_key
    from schemas import ExtractionResult

    by_id = {r.article_id: r for r in records}
    with RunStore(out_dir) as store:
        run_id = store.start_run("run", model="hand-written", provider="fixture")
        for seq, article in enumerate(articles):
            key = cache_key(article.id, {"model": "hand-written"})
            store.register_article(article, run_id=run_id, seq=seq, key=key)
            store.save_outcome(
                article,
                ExtractionResult(article_id=article.id, record=by_id[article.id]),
                key=key,
                run_id=run_id,
            )
        store.finish_run(run_id, status="done", counts={"records": len(records)})
        store.write_derived(out_dir, run_id)
    write_outputs(reconcile(records), out_dir)
    return out_dir


def tempe_run(out_dir: Path) -> Path:
    articles = load_articles()
    return write_run(out_dir, hand_records(articles), articles.all)


LONE_TEXT = (
    "Deputies shot a man outside a feed store in Harlow, Kansas, on Tuesday, the county sheriff said.\n\n"
    "The man, whose name was not released, was taken to a hospital in critical condition, "
    "Sheriff Dana Pruitt said.\n"
)


def lone_article_and_record() -> tuple[Article, IncidentRecord]:
    """A second, unrelated fictional incident reported by one article: a single-source incident."""
    article = Article.from_text(
        LONE_TEXT,
        source_path="lone-harlow.txt",
        outlet="Harlow Courier",
        url="https://harlowcourier.example/2026/05/06/deputies-shoot-man",
        published=date(2026, 5, 6),
    )
    facts = {
        "when": {"date": c("2026-05-05", "on Tuesday, the county sheriff said", "county sheriff")},
        "where": {
            "city": c("Harlow", "outside a feed store in Harlow, Kansas", "county sheriff"),
            "state": c("Kansas", "outside a feed store in Harlow, Kansas", "county sheriff"),
        },
        "what": {"event_type": c("shooting", "Deputies shot a man outside a feed store", "county sheriff")},
        "subjects": [
            {"outcome": c("injured", "was taken to a hospital in critical condition", "Sheriff Dana Pruitt")}
        ],
        "officers": {"count_fired": c("plural", "Deputies shot a man", "county sheriff")},
    }
    return article, hand_record(article, facts)


def two_incident_run(out_dir: Path) -> Path:
    """The Tempe example plus the lone Harlow article: two incidents, one of them single-source."""
    tempe = load_articles()
    lone_article, lone_record = lone_article_and_record()
    return write_run(out_dir, [*hand_records(tempe), lone_record], [*tempe.all, lone_article])
