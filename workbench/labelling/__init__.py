"""Labelling: Bradley–Terry scores from comparisons, informative pairs, and what to label next.

``pairwise.py``: ``pairwise_scores(comparisons, anchors, lo, hi) -> PairwiseScores`` and
``choose_pairs(names, comparisons, k)``. ``suggest.py``: ``suggest(settings, n)`` ranks the unlabelled photos
by how much their labels would cut a ridge's uncertainty over the rest (uncertain, typical, diverse).
``desk.py``: the Label tab's engine (queue, keys, saves).
"""
