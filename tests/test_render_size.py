"""The largest digest we send stays under Gmail's clipping size, its footer included.

Gmail shows an HTML part larger than ~102 KB only up to there ("[Message clipped] View
entire message"), and what it hides is the end: the footer with the unsubscribe and
preferences links, and the last papers' feedback links. Measured from the raw source,
as it counts: the quoted-printable text on the wire, not only the decoded HTML.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import date
from email import message_from_bytes
from pathlib import Path

from digest.config import SAMPLE_BATCH, TEMPLATES_DIR
from digest.ingest.jsonl import paper_from_record
from digest.models import Digest, DigestLinks, Paper, ScoredPaper, Subscriber
from digest.pipeline.composing import compose_wire
from digest.render import make_environment, paper_view
from tests.fixtures.config import make_config

MAX_PAPERS = 50  # DIGEST_MAX_PAPERS' ceiling and the most a subscriber may ask for
# Gmail clips past ~102 KB; what we promise ourselves, with room to spare.
HTML_BOUND = 92_000  # the decoded HTML, and the place of its unsubscribe link
WIRE_BOUND = 100_000  # the HTML part as sent (quoted-printable)


def longest_sample_papers() -> list[Paper]:
    """Return the shipped batch's 50 papers whose shown text is longest, made worse.

    Every one has a DOI-based key (its feedback links carry it, longer than an arXiv id's)
    and upvotes (a line more), as a digest from bioRxiv-like feeds and Hugging Face has.
    """
    lines = SAMPLE_BATCH.read_text(encoding="utf-8").splitlines()
    papers = [paper_from_record(json.loads(line)) for line in lines if line.strip()]

    def shown(paper: Paper) -> int:
        view = paper_view(1, ScoredPaper(paper, 0.0, ""), DigestLinks("", ""))
        return len(view.title) + len(view.authors) + len(view.categories) + len(view.abstract)

    papers.sort(key=shown, reverse=True)
    return [
        dataclasses.replace(paper, key=f"doi:10.1093/bioinformatics/btaf{number:03d}",
                            upvotes=1234)
        for number, paper in enumerate(papers[:MAX_PAPERS])
    ]


def test_the_largest_digest_is_not_clipped_by_gmail(tmp_path: Path) -> None:
    # A 50-paper weekly digest of the batch's longest papers, each with the longest kind
    # of reason the ranker writes, links under a base URL with a path: 103 KB of HTML
    # (111 KB quoted-printable), its unsubscribe link at 102.6 KB, past Gmail's clip.
    config = make_config(
        tmp_path / "var", base_url="https://www.example-university.edu/research/digest"
    )
    reason = (
        "by Mario Medrano-Paredes; close to your seed paper: "
        + "Towards Kinematic Assessment Using Monocular Video: A Preclinical Benchmark"[:77]
        + "...; trending: 1234 upvotes"
    )
    digest = Digest(
        subscriber=Subscriber(id=1_234_567, email="ada.lovelace@example-university.edu",
                              name="Ada Lovelace-Byron", cadence="weekly"),
        day=date(2026, 5, 25),
        papers=tuple(ScoredPaper(p, 0.5, reason) for p in longest_sample_papers()),
        batch_size=1460,
    )
    rendered, _, _, wire = compose_wire(config, digest, env=make_environment(TEMPLATES_DIR))
    html = rendered.html.encode("utf-8")
    assert rendered.html.count("Less like this") == MAX_PAPERS
    assert len(html) < HTML_BOUND, f"the HTML is {len(html):,} bytes"
    # The footer's links are inside what Gmail shows.
    unsubscribe = html.find(b">Unsubscribe</a>")
    assert 0 < unsubscribe < HTML_BOUND
    assert html.find(b">Change your interests or delivery time</a>") < unsubscribe
    (part,) = [p for p in message_from_bytes(wire).walk() if p.get_content_type() == "text/html"]
    assert part["Content-Transfer-Encoding"] == "quoted-printable"
    encoded = part.get_payload(decode=False).encode("ascii")
    assert len(encoded) < WIRE_BOUND, f"the HTML part is {len(encoded):,} bytes on the wire"
