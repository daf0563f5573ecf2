"""The tiny corpus of the retriever, fine-tune and Ray tests: ten documents with unambiguous
answers (and two off-topic ones), six queries, graded judgements. The fixtures built on it
live in ``tests/unit/retrievers/conftest.py`` and ``tests/unit/finetune/conftest.py`` (the
fine-tune tests reword a few documents: see there)."""

from __future__ import annotations

DOCS = {
    "d1": {"title": "Boundary layer",
           "text": "The boundary layer thickens along a flat plate as the flow slows near the wall."},
    "d2": {"title": "Wing flutter",
           "text": "Aeroelastic flutter of a swept wing grows when structural damping is low."},
    "d3": {"title": "Heat transfer", "text": "Heat conduction in composite slabs of two materials was solved exactly."},
    "d4": {"title": "Shock waves", "text": "A normal shock wave forms ahead of a blunt body at supersonic speed."},
    "d5": {"title": "Propellers", "text": "A propeller slipstream increases the lift of the wing behind it."},
    "d6": {"title": "Cooking", "text": "Bake the bread in a hot oven for forty minutes until golden."},
    "d7": {"title": "Gardening", "text": "Tomatoes need sun, water and well drained soil to grow."},
    "d8": {"title": "Hypersonic heating", "text": "Aerodynamic heating of a blunt nose at hypersonic speed is severe."},
    "d9": {"title": "", "text": "Laminar flow becomes turbulent when the Reynolds number is high."},
    "d10": {"title": "Music", "text": "The orchestra played a symphony in a minor key."},
}
QUERIES = {
    "q1": "how does the boundary layer grow on a flat plate",
    "q2": "flutter of swept wings and structural damping",
    "q3": "heat conduction through composite slabs",
    "q4": "shock wave in front of a blunt body at supersonic speeds",
    "q5": "effect of propeller slipstream on wing lift",
    "q6": "when does laminar flow turn turbulent",
}
QRELS = {"q1": {"d1": 2, "d9": 1}, "q2": {"d2": 2}, "q3": {"d3": 2}, "q4": {"d4": 2, "d8": 1}, "q5": {"d5": 2},
         "q6": {"d9": 2, "d1": 1}}
