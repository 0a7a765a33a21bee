"""Writes PruneLab's small text demo: a 4-class news-like data set in AG_NEWS's CSV format.

The sentences are generated here from templates and word lists (World, Sports, Business, Sci/Tech,
the AG_NEWS classes), with a seeded random generator, so the files are reproducible byte for byte
and carry no third-party licence. Each class has its own words, but every text also draws on a
shared pool of general news words, and some texts mention a word from another class, so the task is
easy but not trivial (a trained BiLSTM reaches a little over 90%, not 100%).

    python scripts/make_text_demo.py            # -> resources/text_demo/{train,test}.csv, classes.txt
"""
from __future__ import annotations

import argparse
import csv
import io
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.io import atomic_write_text  # noqa: E402

CLASSES = ["World", "Sports", "Business", "Sci/Tech"]

WORDS = {
    "World": {
        "actor": ["the president", "the prime minister", "rebel leaders", "the foreign minister",
                  "un envoys", "opposition parties", "the parliament", "peacekeepers", "the embassy",
                  "election officials", "the military junta", "refugee agencies", "the ambassador"],
        "verb": ["condemned", "signed", "rejected", "negotiated", "announced", "postponed",
                 "called for", "warned of", "debated", "backed", "suspended", "mediated"],
        "thing": ["a ceasefire", "the peace accord", "new sanctions", "the border treaty",
                  "an emergency summit", "the referendum", "humanitarian aid", "troop withdrawals",
                  "the nuclear talks", "a state visit", "the coalition deal", "election results"],
        "place": ["baghdad", "kabul", "jerusalem", "darfur", "tehran", "moscow", "beijing", "gaza",
                  "nairobi", "caracas", "seoul", "islamabad", "brussels", "geneva", "kiev"],
    },
    "Sports": {
        "actor": ["the striker", "the home team", "the coach", "the defending champion",
                  "the quarterback", "the goalkeeper", "the captain", "the olympic sprinter",
                  "the rookie pitcher", "the tennis star", "the league leaders", "the underdogs"],
        "verb": ["won", "lost", "clinched", "scored in", "dominated", "tied", "advanced to",
                 "was knocked out of", "set a record in", "withdrew from", "rallied in", "swept"],
        "thing": ["the championship final", "the semifinal", "the world cup qualifier",
                  "the grand slam", "the playoff series", "the derby", "the title race",
                  "a penalty shootout", "the marathon", "the relay", "the season opener",
                  "overtime"],
        "place": ["athens", "wimbledon", "old trafford", "yankee stadium", "the olympic stadium",
                  "fenway park", "melbourne park", "anfield", "the home arena", "augusta",
                  "the speedway", "the velodrome"],
    },
    "Business": {
        "actor": ["shares of the retailer", "the central bank", "investors", "the automaker",
                  "the airline", "oil producers", "the chief executive", "wall street",
                  "the bank's shareholders", "regulators", "the insurer", "analysts"],
        "verb": ["raised", "cut", "reported", "forecast", "slashed", "beat", "missed",
                 "acquired", "sold", "merged with", "posted", "downgraded"],
        "thing": ["quarterly profit", "interest rates", "its earnings outlook", "crude prices",
                  "a takeover bid", "the dividend", "third-quarter revenue", "bond yields",
                  "the merger", "annual sales", "job cuts", "stock buybacks"],
        "place": ["new york", "the nasdaq", "the stock exchange", "london markets", "tokyo trading",
                  "frankfurt", "the bond market", "the opec meeting", "the trading floor",
                  "hong kong", "the dow", "the federal reserve"],
    },
    "Sci/Tech": {
        "actor": ["researchers", "the software maker", "nasa scientists", "the chipmaker",
                  "astronomers", "the search engine", "hackers", "engineers", "the space probe",
                  "the open source project", "biologists", "the phone maker"],
        "verb": ["unveiled", "discovered", "launched", "patched", "released", "tested",
                 "developed", "detected", "upgraded", "cloned", "mapped", "demonstrated"],
        "thing": ["a new processor", "a security flaw", "the operating system", "a distant planet",
                  "the genome", "a wireless network", "the web browser", "a robotic rover",
                  "a quantum computer", "the satellite", "a broadband service", "a new virus"],
        "place": ["silicon valley", "the space station", "mars", "the laboratory", "redmond",
                  "the data center", "cern", "the observatory", "the internet", "cape canaveral",
                  "the research institute", "the tech conference"],
    },
}

# general news words every class uses, so no class owns them
SHARED = ["on monday", "on tuesday", "late on friday", "this week", "after months of delay",
          "according to a statement", "officials said", "sources said", "in a surprise move",
          "for the first time", "amid growing concern", "despite criticism", "early today",
          "reuters reported", "the ap reported", "last year", "over the weekend"]

TITLES = ["{actor} {verb} {thing}", "{thing} in {place}", "{actor} {verb} {thing} in {place}",
          "update: {actor} {verb} {thing}"]
BODIES = ["{shared}, {actor} {verb} {thing} in {place}.",
          "{actor} {verb} {thing} {shared}, a move that surprised observers in {place}.",
          "in {place}, {actor} {verb} {thing}. {shared2}, {actor2} {verb2} {thing2}.",
          "{actor} {verb} {thing} {shared} as {actor2} {verb2} {thing2}."]


def sentence(rng: random.Random, template: str, cls: str, mix_from: str | None) -> str:
    words = WORDS[cls]

    def pick(kind: str) -> str:
        # a distractor word from another class now and then keeps the task from being trivial
        source = WORDS[mix_from] if mix_from and rng.random() < 0.35 else words
        return rng.choice(source[kind])
    fields = {k: pick(k) for k in ("actor", "verb", "thing", "place")}
    fields.update({f"{k}2": pick(k) for k in ("actor", "verb", "thing")})
    fields["shared"], fields["shared2"] = rng.choice(SHARED), rng.choice(SHARED)
    text = template.format(**fields)
    return text[0].upper() + text[1:]


def generate(n: int, rng: random.Random, mix_rate: float = 0.25) -> list[tuple[int, str, str]]:
    rows = []
    for _ in range(n):
        label = rng.randrange(len(CLASSES))
        cls = CLASSES[label]
        mix = rng.choice([c for c in CLASSES if c != cls]) if rng.random() < mix_rate else None
        title = sentence(rng, rng.choice(TITLES), cls, mix)
        body = sentence(rng, rng.choice(BODIES), cls, mix)
        rows.append((label + 1, title, body))  # AG_NEWS labels are 1-based
    return rows


def to_csv(rows: list[tuple[int, str, str]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\n")
    writer.writerows(rows)
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "resources" / "text_demo")
    parser.add_argument("--train", type=int, default=3000)
    parser.add_argument("--test", type=int, default=800)
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    train, test = generate(args.train, rng), generate(args.test, rng)
    atomic_write_text(args.out / "train.csv", to_csv(train))
    atomic_write_text(args.out / "test.csv", to_csv(test))
    atomic_write_text(args.out / "classes.txt", "\n".join(CLASSES) + "\n")
    print(f"wrote {len(train)} train and {len(test)} test rows to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
