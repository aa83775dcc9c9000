"""One short human line per chosen paper: why it is in the email."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from digest.models import Paper, Profile
from digest.rank.vectors import Space


def matched_terms(query: sp.csr_matrix, doc: sp.csr_matrix, space: Space, n: int = 3) -> list[str]:
    """Return the terms contributing most to the query-document product."""
    product = query.multiply(doc).tocoo()
    if product.nnz == 0:
        return []
    order = np.lexsort((product.col, -product.data))
    terms: list[str] = []
    for k in order:
        term = space.terms[int(product.col[k])]
        # A bigram makes its unigrams redundant in the reason, and vice versa.
        if any(term in t.split(" ") or t in term.split(" ") for t in terms):
            continue
        terms.append(term)
        if len(terms) == n:
            break
    return terms


def explain(
    profile: Profile, paper: Paper, query: sp.csr_matrix, doc: sp.csr_matrix, space: Space
) -> str:
    """Return the reason line for one paper under one profile."""
    if profile.authors:
        followed = {" ".join(a.lower().split()) for a in profile.authors}
        for author in paper.authors:
            if " ".join(author.lower().split()) in followed:
                return f"by {author}"
    terms = matched_terms(query, doc, space)
    if terms:
        return "matches: " + ", ".join(terms)
    if profile.categories:
        hit = [c for c in paper.categories if c in profile.categories]
        if hit:
            return f"in {hit[0]}"
    return "related to your interests"
