"""The body regions and conditions of the clinic network's "Select Your Problem Area" page.

Pure data. Each condition line of the seed page is one condition; the seed repeats one "Spine" list
under both Cervical Spine and Lower Spine, so disc problems and pinched nerves exist once per part
of the spine (their ICD-10-CM families differ), while SI joint syndrome and sciatica, which are
lower-back conditions whatever page lists them, belong to the lower spine only. The seed article's
own topic (back-muscle wasting, multifidus atrophy) is a lower-spine condition.

ICD-10-CM families are the ones verified in DESIGN.md; catch-all lines ("Other ...") carry none,
because no single code family describes them honestly.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Region:
    slug: str
    name: str
    # What a patient calls it; used to recognise "my neck", "lower back", "wrist".
    words: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Condition:
    slug: str
    name: str
    regions: tuple[str, ...]
    icd10: tuple[str, ...]
    # Lay names, abbreviations and common misspellings a patient types.
    synonyms: tuple[str, ...] = ()

    @property
    def icd10_label(self) -> str:
        return " / ".join(self.icd10)


REGIONS: tuple[Region, ...] = (
    Region("shoulder", "Shoulder", ("shoulder", "shoulders", "rotator", "arm")),
    Region("cervical-spine", "Neck (cervical spine)", ("neck", "cervical", "upper back")),
    Region("lower-spine", "Back (lower spine)", ("back", "lower back", "low back", "lumbar", "spine")),
    Region("knee", "Knee", ("knee", "knees")),
    Region("hand-wrist", "Hand & wrist", ("hand", "hands", "wrist", "wrists", "finger", "thumb")),
    Region("elbow", "Elbow", ("elbow", "elbows")),
    Region("hip", "Hip", ("hip", "hips", "groin")),
    Region("foot-ankle", "Foot & ankle", ("foot", "feet", "ankle", "ankles", "heel", "toe")),
)

CONDITIONS: tuple[Condition, ...] = (
    # Shoulder
    Condition(
        "rotator-cuff-tear",
        "Rotator cuff tear",
        ("shoulder",),
        ("M75.1-", "S46.01-"),
        ("torn rotator cuff", "rotator cuff", "rotor cuff", "rotator cuff injury"),
    ),
    Condition(
        "shoulder-tendinitis",
        "Shoulder tendinitis",
        ("shoulder",),
        ("M75.8-",),
        ("shoulder tendonitis", "rotator cuff tendinitis", "shoulder tendon", "swimmers shoulder"),
    ),
    Condition(
        "shoulder-instability",
        "Shoulder instability",
        ("shoulder",),
        ("M25.31-", "M24.41-"),
        (
            "dislocated shoulder",
            "shoulder dislocation",
            "loose shoulder",
            "shoulder pops out",
            "shoulder subluxation",
        ),
    ),
    Condition(
        "slap-labral-tear",
        "SLAP tear / labral tear of the shoulder",
        ("shoulder",),
        ("S43.43-",),
        ("slap", "slap tear", "shoulder labrum", "torn labrum shoulder", "shoulder labral tear"),
    ),
    Condition(
        "shoulder-arthritis",
        "Shoulder arthritis",
        ("shoulder",),
        ("M19.01-",),
        ("shoulder osteoarthritis", "arthritic shoulder"),
    ),
    Condition(
        "shoulder-degenerative-overuse",
        "Other shoulder degenerative conditions & overuse injuries",
        ("shoulder",),
        (),
        (
            "shoulder pain",
            "frozen shoulder",
            "shoulder overuse",
            "sore shoulder",
            "shoulder injury",
            "shoulder bursitis",
            "shoulder impingement",
        ),
    ),
    # Neck
    Condition(
        "cervical-disc-herniation",
        "Herniated, bulging or protruding disc in the neck",
        ("cervical-spine",),
        ("M50.2-", "M50.1-"),
        (
            "herniated disc neck",
            "bulging disc neck",
            "slipped disc neck",
            "cervical herniated disc",
            "neck disc",
            "cervical disc",
        ),
    ),
    Condition(
        "cervical-degenerative-disc-disease",
        "Degenerative disc disease of the neck",
        ("cervical-spine",),
        ("M50.3-",),
        (
            "cervical degenerative disc",
            "neck arthritis",
            "cervical spondylosis",
            "degenerative disc neck",
            "ddd neck",
        ),
    ),
    Condition(
        "cervical-pinched-nerve",
        "Pinched nerve and general neck pain",
        ("cervical-spine",),
        ("M54.1-",),
        (
            "pinched nerve neck",
            "neck pain",
            "cervical radiculopathy",
            "stiff neck",
            "sore neck",
            "nerve pain down my arm",
            "arm numbness",
        ),
    ),
    Condition(
        "cervical-other",
        "Other neck conditions",
        ("cervical-spine",),
        (),
        ("whiplash", "neck injury", "neck problem"),
    ),
    # Lower back
    Condition(
        "lumbar-disc-herniation",
        "Herniated, bulging or protruding disc in the lower back",
        ("lower-spine",),
        ("M51.26", "M51.27", "M51.16", "M51.17"),
        (
            "herniated disc",
            "bulging disc",
            "slipped disc",
            "ruptured disc",
            "protruding disc",
            "disc herniation",
            "disc bulge",
            "lumbar disc",
        ),
    ),
    Condition(
        "lumbar-degenerative-disc-disease",
        "Degenerative disc disease of the lower back",
        ("lower-spine",),
        ("M51.36-", "M51.37-"),
        (
            "degenerative disc disease",
            "ddd",
            "worn discs",
            "disc degeneration",
            "degenerative disc",
            "lumbar spondylosis",
            "back arthritis",
        ),
    ),
    Condition(
        "si-joint-syndrome",
        "SI joint syndrome",
        ("lower-spine",),
        ("M53.3", "M46.1"),
        (
            "sacroiliac joint",
            "si joint",
            "sacroiliac",
            "si joint pain",
            "sacroiliitis",
            "tailbone pain",
            "buttock pain",
        ),
    ),
    Condition(
        "sciatica",
        "Sciatica",
        ("lower-spine",),
        ("M54.3-", "M54.4-"),
        (
            "sciatic",
            "sciatic nerve",
            "pain down my leg",
            "leg pain from back",
            "shooting leg pain",
            "sciatica pain",
            "lumbago with sciatica",
        ),
    ),
    Condition(
        "lumbar-pinched-nerve",
        "Pinched nerve and general back pain",
        ("lower-spine",),
        ("M54.1-",),
        (
            "pinched nerve",
            "back pain",
            "lower back pain",
            "low back pain",
            "backache",
            "radiculopathy",
            "lumbar radiculopathy",
            "bad back",
            "sore back",
            "nerve pain",
        ),
    ),
    Condition(
        "back-muscle-weakness",
        "Back muscle weakness and wasting (multifidus atrophy)",
        ("lower-spine",),
        ("M62.5-", "M62.84"),
        (
            "multifidus",
            "multifidus atrophy",
            "back muscle wasting",
            "weak back muscles",
            "back muscle loss",
            "sarcopenia",
            "muscle wasting",
            "muscle atrophy",
            "back weakness",
        ),
    ),
    Condition(
        "lower-spine-other",
        "Other back conditions",
        ("lower-spine",),
        (),
        ("spinal stenosis", "facet joint", "failed back surgery", "spondylolisthesis"),
    ),
    # Knee
    Condition(
        "meniscus-tear",
        "Knee meniscus tear",
        ("knee",),
        ("S83.2-", "M23.2-"),
        ("meniscus", "torn meniscus", "meniscal tear", "torn cartilage knee", "knee cartilage tear"),
    ),
    Condition(
        "acl-tear",
        "Knee ACL tear",
        ("knee",),
        ("S83.51-", "M23.61-"),
        ("acl", "torn acl", "anterior cruciate ligament", "acl injury", "acl tear", "cruciate ligament"),
    ),
    Condition(
        "knee-instability",
        "Knee instability",
        ("knee",),
        ("M23.5-", "M25.36-"),
        ("knee gives way", "unstable knee", "wobbly knee", "knee buckling", "loose knee", "knee gives out"),
    ),
    Condition(
        "knee-osteoarthritis",
        "Knee osteoarthritis",
        ("knee",),
        ("M17.-",),
        (
            "knee arthritis",
            "arthritic knee",
            "bone on bone knee",
            "worn out knee",
            "knee oa",
            "osteoarthritis",
            "knee replacement",
        ),
    ),
    Condition(
        "knee-ligament-tendon-overuse",
        "Other knee ligament, tendon and overuse injuries",
        ("knee",),
        (),
        (
            "knee pain",
            "mcl",
            "pcl",
            "patellar tendonitis",
            "jumpers knee",
            "runners knee",
            "knee tendon",
            "knee ligament",
            "knee sprain",
            "sore knee",
        ),
    ),
    # Hand & wrist
    Condition(
        "hand-wrist-arthritis",
        "Hand and wrist arthritis",
        ("hand-wrist",),
        ("M19.04-", "M19.03-"),
        ("wrist arthritis", "hand arthritis", "arthritis in my hands", "finger arthritis", "arthritic hands"),
    ),
    Condition(
        "carpal-tunnel-syndrome",
        "Carpal tunnel syndrome",
        ("hand-wrist",),
        ("G56.0-",),
        ("carpal tunnel", "numb hands", "hand numbness", "tingling fingers", "numb fingers"),
    ),
    Condition(
        "trigger-finger",
        "Trigger finger",
        ("hand-wrist",),
        ("M65.3-",),
        ("trigger thumb", "finger locks", "finger catching", "stuck finger"),
    ),
    Condition(
        "thumb-arthritis",
        "Thumb arthritis (basal joint, CMC, gamer's thumb, texting thumb)",
        ("hand-wrist",),
        ("M18.-",),
        (
            "cmc arthritis",
            "basal joint arthritis",
            "gamers thumb",
            "texting thumb",
            "thumb pain",
            "thumb joint",
            "base of thumb",
        ),
    ),
    Condition(
        "hand-wrist-other",
        "Other hand and wrist conditions that cause pain",
        ("hand-wrist",),
        (),
        ("wrist pain", "hand pain", "wrist sprain", "tfcc", "de quervain", "ganglion cyst"),
    ),
    # Elbow
    Condition(
        "golfers-elbow",
        "Medial epicondylitis",
        ("elbow",),
        ("M77.0-",),
        ("golfers elbow", "golfer elbow", "medial epicondylitis", "inner elbow pain"),
    ),
    Condition(
        "tennis-elbow",
        "Lateral epicondylitis",
        ("elbow",),
        ("M77.1-",),
        ("tennis elbow", "lateral epicondylitis", "outer elbow pain", "epicondylitis"),
    ),
    Condition(
        "elbow-arthritis",
        "Elbow arthritis",
        ("elbow",),
        ("M19.02-",),
        ("arthritic elbow", "elbow osteoarthritis"),
    ),
    Condition(
        "ucl-injury",
        "Ulnar collateral ligament (UCL) wear",
        ("elbow",),
        ("S53.44-", "S53.3-"),
        (
            "ucl",
            "ucl tear",
            "tommy john",
            "pitchers elbow",
            "ulnar collateral ligament",
            "elbow ligament",
            "baseball elbow",
        ),
    ),
    Condition(
        "elbow-other",
        "Other elbow conditions",
        ("elbow",),
        (),
        ("elbow pain", "elbow tendon", "elbow bursitis", "sore elbow"),
    ),
    # Hip
    Condition(
        "hip-labral-tear",
        "Hip labral tear",
        ("hip",),
        ("S73.19-", "M24.15-"),
        ("hip labrum", "torn labrum", "labral tear", "labrum tear", "hip labral", "labral"),
    ),
    Condition(
        "hip-arthritis",
        "Hip arthritis",
        ("hip",),
        ("M16.-",),
        ("hip osteoarthritis", "arthritic hip", "bone on bone hip", "hip replacement", "hip oa"),
    ),
    Condition(
        "hip-bursitis",
        "Hip bursitis",
        ("hip",),
        ("M70.6-",),
        ("trochanteric bursitis", "bursitis", "hip bursa", "bursitis hip", "outer hip pain"),
    ),
    Condition(
        "hip-tendinitis",
        "Hip sprain, tendonitis or inflammation",
        ("hip",),
        ("M76.0-",),
        (
            "hip tendonitis",
            "hip tendinitis",
            "hip sprain",
            "hip flexor",
            "hip inflammation",
            "gluteal tendinopathy",
            "hip pain",
            "groin strain",
        ),
    ),
    Condition(
        "hip-instability",
        "Hip instability",
        ("hip",),
        ("M25.35-",),
        ("unstable hip", "hip gives way", "hip dislocation", "loose hip", "hip dysplasia"),
    ),
    # Foot & ankle
    Condition(
        "ankle-arthritis",
        "Ankle arthritis",
        ("foot-ankle",),
        ("M19.07-",),
        ("arthritic ankle", "ankle osteoarthritis", "foot arthritis"),
    ),
    Condition(
        "plantar-fasciitis",
        "Plantar fasciitis",
        ("foot-ankle",),
        ("M72.2",),
        ("heel pain", "heel spur", "plantar", "fasciitis", "sore heel"),
    ),
    Condition(
        "ankle-ligament-sprain",
        "Ankle ligament sprain or tear",
        ("foot-ankle",),
        ("S93.40-", "S93.49-"),
        (
            "sprained ankle",
            "ankle sprain",
            "twisted ankle",
            "rolled ankle",
            "torn ankle ligament",
            "ankle ligament",
            "ankle instability",
        ),
    ),
    Condition(
        "foot-ankle-other",
        "Other foot and ankle conditions that cause pain",
        ("foot-ankle",),
        (),
        ("foot pain", "ankle pain", "achilles", "achilles tendonitis", "bunion", "morton neuroma"),
    ),
)

REGION_BY_SLUG: dict[str, Region] = {r.slug: r for r in REGIONS}
CONDITION_BY_SLUG: dict[str, Condition] = {c.slug: c for c in CONDITIONS}


def conditions_in(region_slug: str) -> list[Condition]:
    return [c for c in CONDITIONS if region_slug in c.regions]
