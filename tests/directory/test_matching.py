"""A patient's own words find the condition they mean (pure matcher, no server)."""

from __future__ import annotations

import pytest

from directory.matching import match_conditions, resolve_condition
from directory.taxonomy import CONDITIONS, REGIONS

# What people type, and the condition they mean.
LAY_QUERIES: list[tuple[str, str]] = [
    ("tennis elbow", "tennis-elbow"),
    ("tenis elbow", "tennis-elbow"),
    ("tennis elbo", "tennis-elbow"),
    ("outer elbow pain", "tennis-elbow"),
    ("golfer's elbow", "golfers-elbow"),
    ("golfers elbow", "golfers-elbow"),
    ("inner elbow pain", "golfers-elbow"),
    ("tommy john", "ucl-injury"),
    ("pitcher's elbow", "ucl-injury"),
    ("arthritis in my elbow", "elbow-arthritis"),
    ("bulging disk", "lumbar-disc-herniation"),
    ("herniated disc", "lumbar-disc-herniation"),
    ("slipped disc in my lower back", "lumbar-disc-herniation"),
    ("bulging disc in my neck", "cervical-disc-herniation"),
    ("pinched nerve in my neck", "cervical-pinched-nerve"),
    ("pinched nerve", "lumbar-pinched-nerve"),
    ("lower back pain", "lumbar-pinched-nerve"),
    ("my back hurts, bad back", "lumbar-pinched-nerve"),
    ("neck pain", "cervical-pinched-nerve"),
    ("stiff neck", "cervical-pinched-nerve"),
    ("degenerative disc disease", "lumbar-degenerative-disc-disease"),
    ("degenerative disk in neck", "cervical-degenerative-disc-disease"),
    ("sciatica", "sciatica"),
    ("siatica", "sciatica"),
    ("sciatic nerve pain", "sciatica"),
    ("pain shooting down my leg", "sciatica"),
    ("si joint", "si-joint-syndrome"),
    ("sacroiliac joint pain", "si-joint-syndrome"),
    ("multifidus atrophy", "back-muscle-weakness"),
    ("weak back muscles", "back-muscle-weakness"),
    ("back muscle wasting", "back-muscle-weakness"),
    ("acl", "acl-tear"),
    ("torn ACL", "acl-tear"),
    ("anterior cruciate ligament", "acl-tear"),
    ("torn meniscus", "meniscus-tear"),
    ("miniscus tear", "meniscus-tear"),
    ("meniscus", "meniscus-tear"),
    ("knee arthritis", "knee-osteoarthritis"),
    ("bone on bone knee", "knee-osteoarthritis"),
    ("knee osteoarthritus", "knee-osteoarthritis"),
    ("my knee gives way", "knee-instability"),
    ("unstable knee", "knee-instability"),
    ("runner's knee", "knee-ligament-tendon-overuse"),
    ("jumpers knee", "knee-ligament-tendon-overuse"),
    ("rotator cuff tear", "rotator-cuff-tear"),
    ("torn rotater cuff", "rotator-cuff-tear"),
    ("rotor cuff", "rotator-cuff-tear"),
    ("slap", "slap-labral-tear"),
    ("SLAP tear", "slap-labral-tear"),
    ("dislocated shoulder", "shoulder-instability"),
    ("shoulder arthritis", "shoulder-arthritis"),
    ("shoulder tendonitis", "shoulder-tendinitis"),
    ("frozen shoulder", "shoulder-degenerative-overuse"),
    ("carpal tunnel", "carpal-tunnel-syndrome"),
    ("carpel tunnel", "carpal-tunnel-syndrome"),
    ("numb fingers", "carpal-tunnel-syndrome"),
    ("trigger finger", "trigger-finger"),
    ("triger finger", "trigger-finger"),
    ("texting thumb", "thumb-arthritis"),
    ("basal joint arthritis", "thumb-arthritis"),
    ("arthritis in my hands", "hand-wrist-arthritis"),
    ("wrist arthritis", "hand-wrist-arthritis"),
    ("hip bursitis", "hip-bursitis"),
    ("trochanteric bursitis", "hip-bursitis"),
    ("hip labral tear", "hip-labral-tear"),
    ("torn labrum in hip", "hip-labral-tear"),
    ("hip arthritis", "hip-arthritis"),
    ("arthritic hip", "hip-arthritis"),
    ("hip flexor tendonitis", "hip-tendinitis"),
    ("hip instability", "hip-instability"),
    ("plantar fasciitis", "plantar-fasciitis"),
    ("plantar fascitis", "plantar-fasciitis"),
    ("heel pain", "plantar-fasciitis"),
    ("sprained ankle", "ankle-ligament-sprain"),
    ("twisted ankle", "ankle-ligament-sprain"),
    ("ankle arthritis", "ankle-arthritis"),
    ("achilles tendonitis", "foot-ankle-other"),
    ("whiplash", "cervical-other"),
    ("spinal stenosis", "lower-spine-other"),
    ("Épicondylite tennis elbow", "tennis-elbow"),
]


def test_table_is_broad() -> None:
    assert len(LAY_QUERIES) >= 60
    meant = {slug for _, slug in LAY_QUERIES}
    regions = {r for c in CONDITIONS if c.slug in meant for r in c.regions}
    assert regions == {r.slug for r in REGIONS}


def test_top1_accuracy_at_least_95_percent() -> None:
    misses = []
    for query, expected in LAY_QUERIES:
        matches = match_conditions(query)
        top = matches[0].condition.slug if matches else None
        if top != expected:
            misses.append((query, expected, top))
    accuracy = 1 - len(misses) / len(LAY_QUERIES)
    assert accuracy >= 0.95, f"top-1 accuracy {accuracy:.1%}; misses: {misses}"


def test_why_names_the_phrase_condition_and_icd_family() -> None:
    (match,) = resolve_condition("tenis elbow")
    assert match.why == "tennis elbow -> Lateral epicondylitis (M77.1-)"


def test_slug_resolves_exactly() -> None:
    (match,) = resolve_condition("knee-osteoarthritis")
    assert match.condition.slug == "knee-osteoarthritis"


def test_ambiguous_word_offers_every_close_condition() -> None:
    slugs = {m.condition.slug for m in resolve_condition("arthritis")}
    assert {"knee-osteoarthritis", "hip-arthritis", "shoulder-arthritis"} <= slugs


@pytest.mark.parametrize("nonsense", ["", "   ", "xyzzy", "qqqq wwww", "!!!", "a" * 200])
def test_nonsense_matches_nothing(nonsense: str) -> None:
    assert resolve_condition(nonsense) == ()


def test_prefix_while_typing_suggests() -> None:
    assert match_conditions("plant")[0].condition.slug == "plantar-fasciitis"
