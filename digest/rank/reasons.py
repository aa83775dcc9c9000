"""One short human line per chosen paper: why it is in the email.

Worked out for every (profile, chosen paper) pair of a chunk at once: one sparse
elementwise product gives every matched term's contribution, one gather the closest
example paper; Python only joins the words of the line.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from digest.models import Paper, Profile, with_aliases
from digest.rank.metadata import BatchIndex
from digest.rank.profiles import (
    Compiled,
    Examples,
    Feedback,
    centroid_rows,
    feedback_rows,
)
from digest.rank.vectors import Space, WrittenText, kept_for, written_text

# A paper is "close to" an example paper (the line names it) when their tf-idf cosine
# is at least CLOSE and, with an LSA space, their LSA cosine at least CLOSE_DENSE. Set
# by hand-judging pairs of real corpus days (380 profiles with seeds and liked papers x
# 10 picks): at 0.25 / 0.3 the line named a paper on 0.1-0.2% of picks (the median
# picked paper's closest example sits at 0.05); at 0.12 / 0.5 on ~3%, 52 of 60 sampled
# named papers truly close. Between 0.12 and 0.15 the LSA bar is what keeps the loose
# pairs out (LSA 0.3-0.5: 2 of 7 close); below 0.12 about half are loose at any LSA bar.
CLOSE = 0.12
CLOSE_DENSE = 0.5
TERMS = 3  # matched terms named in a reason
# (profile, paper) pairs explained at once: their term products hold a paper's terms
# each (~150), and the search for the closest example a pair per example of its
# profile, so a chunk's whole ranked batch (500 x 2,000 pairs with --top 2000 --all)
# held GBs, one profile of 3,000 seed papers 0.4 GB more. A chunk's usual lists (500 x
# 10 pairs) are one block.
PAIR_BLOCK = 20_000
CANDIDATE_BLOCK = 1_000_000  # (pair, example) candidates for the closest example
# Where a reason's terms come from, and how the line introduces them: the profile's
# own words (interests, keywords); else, where those share nothing with the paper, its
# seed or liked papers; else the papers its words retrieved (query expansion), which
# are no words the subscriber typed, so the line does not say "matches".
OWN_WORDS, EXAMPLES, RETRIEVED = 0, 1, 2
TERMS_OWN = "matches: "
TERMS_SEED = "shares with your seed paper: "
TERMS_SEEDS = "shares with your seed papers: "
TERMS_LIKED_ONE = "shares with a paper you liked: "
TERMS_LIKED = "shares with papers you liked: "
TERMS_BOTH = "shares with your seed and liked papers: "
TERMS_RELATED = "related to your interests: "
LOOK = 4 * TERMS + 4  # best contributions looked at to find them
# Words that say nothing of a paper's topic, though the ranker counts them (they share
# little idf with topic words but abound in abstracts): academic filler, the generic
# adjectives, adverbs, verbs and nouns of any field, and the halves of hyphenated words
# ('multi', 'self', 'end', 'free' of 'multi-agent', 'end-to-end', 'training-free'). A
# reason does not name a term all of whose words are here ("shares with your seed
# papers: real, need, notably"); one with a topic word stays ("real robot", "long
# context"). As the space writes words: lower case, plural endings dropped.
_FILLER_TEXT = """
    ability able accuracy accurate accurately actual actually additional
    additionally allow allowing analysis application aspect associated assume
    assumption best better broad capability capable capture case challenge
    challenging collected common commonly compared complex component comprehensive
    confirm consider considered consistent consistently contribution core critical
    crucial current currently data deep degree demonstrated despite detailed develop
    developed direct directly diverse driven easily effect efficiency efficiently
    element emerging enable enabling end enhance enhanced enhancing entire
    especially essential evaluate evaluated evaluating evaluation example explicit
    explicitly explore exploring extend extensively face facing factor fail failure
    far finally finding fine focus form free fully fundamental gain gap general
    generally given good great greater grow growing guided handle help high higher
    highly impact implement implementation implicit importance important improve
    improved improvement improving include including increase increasing
    increasingly induced inherent insight instead investigate involve issue key kind
    lack large largely larger largest lead leading learning level leverage
    leveraging limitation limited line long low lower main mainly make making model
    module multi multiple natural nature near need non notable notably number
    observe observed obtain obtained offer open order overall paradigm particular
    particularly perform performed performing perspective point popular possible
    post potential powerful practical pre precise previous previously primarily
    principle prior problem process produce promising proper property provide
    providing quality question range rapid rapidly real recent recently reduce
    reducing relevant reliable reliably rely remain remarkable require requiring
    respectively reveal rich robust role scale scenario second self semi set setting
    short significant simple simultaneously single small smaller specific
    specifically stage standard step strategy strong stronger structure substantial
    substantially suffer suitable superior support technique trained treat true type
    typical typically understanding unified unique validate valuable value variety
    vast version way wide widely wise yield zero
"""
FILLER = frozenset(_FILLER_TEXT.split())


@dataclass(frozen=True)
class Context:
    """What the reasons of one chunk are read from."""

    space: Space
    compiled: Compiled
    examples: Examples
    docs: sp.csr_matrix  # batch rows (sorted indices)
    doc_keys: np.ndarray  # row * V + column of every stored entry of docs, ascending
    dense_docs: np.ndarray  # batch rows in LSA space (B x 0 without LSA)
    pool: sp.csr_matrix  # feedback pool rows
    feedback: Feedback | None
    index: BatchIndex
    # Category -> how much one example paper in it weighs in the score (its rarity,
    # metadata.category_lift); a category not named weighs 1.
    category_weight: Mapping[str, float] = field(default_factory=dict)
    # Per profile the fields its words point to (scoring._leading_fields; empty: none).
    fields: Sequence[AbstractSet[str]] = ()


def explain_all(
    context: Context,
    profiles: Sequence[Profile],
    papers: Sequence[Paper],
    picks: Sequence[Sequence[int]],
    *,
    trending: Sequence[bool],
    literal: Mapping[int, Sequence[tuple[str, np.ndarray]]] | None = None,
) -> list[list[str]]:
    """Return the reason lines for every chosen paper of every profile of a chunk.

    A line joins the first two that apply of: a followed author (or else an author of
    the profile's seed or liked papers), the closest example paper, the matched terms, a
    wanted category (or else one of most of its seed or liked papers), the upvotes of a
    trending paper, a field the profile's words point to (Context.fields). ``literal``:
    per chunk row, its keywords found as typed ((keyword, batch columns holding it);
    scoring._literal_keywords): a paper holding one is said to match it, rather than the
    terms left of it.
    """
    lengths = [len(chosen) for chosen in picks]
    rows = np.repeat(np.arange(len(picks), dtype=np.intp), lengths)
    cols = np.fromiter(itertools.chain.from_iterable(picks), dtype=np.intp, count=rows.size)
    if rows.size == 0:
        return [[] for _ in picks]
    blocks = _pair_blocks(context, rows)
    found = [_pair_terms(context, rows[block], cols[block]) for block in blocks]
    matched, counts, whence = (np.concatenate(part) for part in zip(*found, strict=True))
    sizes = counts.tolist()
    sources = whence.tolist()
    terms = _terms_written(_written_of(papers), context.space.terms, cols, matched, counts)
    closest = np.concatenate(
        [_closest_examples(context, rows[block], cols[block]) for block in blocks]).tolist()
    close_lines: dict[tuple[int, bool], str] = {}  # (example, is a seed) -> its part
    by_author = context.index.by_author
    example_authors = context.examples.authors
    example_categories = context.examples.categories
    paper_categories = [p.categories for p in papers]
    out: list[list[str]] = []
    pair = 0
    for r, chosen in enumerate(picks):
        profile = profiles[r]
        followed = context.index.names.followed(profile.authors)  # as the papers fold them
        wanted = set(with_aliases(profile.categories))  # cs.NA: a paper in math.NA
        fields = context.fields[r] if context.fields else _NONE
        seeds = context.compiled.seed_examples[r]
        trend = trending[r]
        positives = context.compiled.positive_examples[r]
        labels = (TERMS_OWN, _examples_label(len(seeds), len(positives) - len(seeds)),
                  TERMS_RELATED)
        # What the example papers share with a paper is tested on their sets; counted
        # (on how many seed and liked papers) only for a profile where some paper does.
        authors: AbstractSet[str] = _NONE
        categories: AbstractSet[str] = _NONE
        if chosen and positives:
            authors = set().union(*[example_authors[e] for e in positives])
            categories = set().union(*[example_categories[e] for e in positives])
        shared: _Shared | None = None
        lines: list[str] = []
        typed = literal.get(r) if literal else None
        for j in chosen:
            parts: list[str] = []
            names = by_author[j]
            if followed and not followed.isdisjoint(names):
                for name in reversed(names):  # the first followed one in the paper's order
                    if name in followed:
                        parts.append(f"by {names[name]}")
                        break
            if authors and not parts and not authors.isdisjoint(names):
                if shared is None:
                    shared = _example_counts(context.examples, positives, seeds)
                part = _shared_part(((n, names[n]) for n in reversed(names) if n in authors),
                                    shared.seed_authors, shared.liked_authors, least=1)
                if part:
                    parts.append(f"by {part}")
            best = closest[pair]
            if best >= 0:
                seed = best in seeds
                line = close_lines.get((best, seed))
                if line is None:
                    line = close_lines[best, seed] = _close_line(context, best, seed)
                parts.append(line)
            if len(parts) < 2:
                size = sizes[pair]
                held = [k for k, hits in typed if j in hits] if typed else []
                if held:
                    parts.append(TERMS_OWN + ", ".join(held[:TERMS]))
                elif size:
                    parts.append(labels[sources[pair]] + terms[pair])
                if len(parts) < 2:
                    listed = paper_categories[j]
                    # The category a part names, by both its arXiv codes: said once.
                    said: AbstractSet[str] = _NONE
                    if wanted:
                        for category in listed:  # the paper's first wanted one
                            if category in wanted:
                                parts.append(f"in {category}")
                                said = set(with_aliases((category,)))
                                break
                    if (len(parts) < 2 and categories  # one example in a category says
                            and not categories.isdisjoint(listed)):  # little
                        if shared is None:
                            shared = _example_counts(context.examples, positives, seeds)
                        part = _shared_part(((c, c) for c in listed if c not in said),
                                            shared.seed_categories, shared.liked_categories,
                                            least=2, weight=context.category_weight)
                        if part:
                            parts.append(f"in {part}")
                            # "cs.RO, as are 3 of your seed papers"
                            said = set(with_aliases((part.split(",", 1)[0],)))
                    if trend and len(parts) < 2 and papers[j].upvotes:
                        votes = papers[j].upvotes
                        parts.append(f"trending: {votes} upvote{'' if votes == 1 else 's'}")
                    if fields and len(parts) < 2:
                        for category in listed:  # the first field the words point to
                            if category in fields and category not in said:
                                parts.append(f"in {category}")
                                break
            lines.append("; ".join(parts) if parts else "related to your interests")
            pair += 1
        out.append(lines)
    return out


_NONE: frozenset[str] = frozenset()


def _pair_blocks(context: Context, rows: np.ndarray) -> list[slice]:
    """Split the pairs into runs of at most PAIR_BLOCK pairs and CANDIDATE_BLOCK
    (pair, example) candidates (a pair with more is a run of its own); each pair is
    explained alone, so the runs give the same lines as one."""
    owners = context.compiled.positive_owner
    examples = np.bincount(owners, minlength=int(rows.max()) + 1)[rows] if owners.size \
        else np.zeros(rows.size, dtype=np.intp)
    blocks: list[slice] = []
    start = 0
    while start < rows.size:
        within = np.cumsum(examples[start:start + PAIR_BLOCK])
        end = start + max(1, int(np.searchsorted(within, CANDIDATE_BLOCK, side="right")))
        blocks.append(slice(start, end))
        start = end
    return blocks


def _terms_written(
    written: _Written, vocabulary: Sequence[str], cols: np.ndarray, matched: np.ndarray,
    counts: np.ndarray,
) -> list[str]:
    """Return per pair its matched terms as its paper writes them, joined by ", ".

    Each (paper, term) is looked up once per batch (_Written.keyed_terms) and each line
    joined as a list's slice: through _Written.term for each distinct pair of a chunk,
    and the lines joined on object arrays, this took ~8 ms of a chunk of 500 bench
    profiles (~5 ms now); term by term in the per-pick loop, explain_all took ~6% more.
    """
    named = np.arange(TERMS) < counts[:, None]  # pairs x TERMS: the slots holding a term
    keys = cols.astype(np.int64)[:, None] * np.int64(len(vocabulary)) + matched
    forms = written.keyed_terms(keys[named].tolist(), vocabulary)  # pair by pair
    lines: list[str] = []
    end = 0
    for size in counts.tolist():
        start, end = end, end + size
        lines.append(", ".join(forms[start:end]))
    return lines


def _examples_label(seeds: int, liked: int) -> str:
    """Return how a line introduces the words a paper shares with a profile's seed and
    liked papers (their centroid): as many as there are, and which.
    """
    if seeds and liked:
        return TERMS_BOTH
    if seeds:
        return TERMS_SEED if seeds == 1 else TERMS_SEEDS
    return TERMS_LIKED_ONE if liked == 1 else TERMS_LIKED


@dataclass(frozen=True)
class _Shared:
    """On how many of a profile's seed papers, and of its liked ones, each author and
    each category is found.
    """

    seed_authors: Counter[str]
    liked_authors: Counter[str]
    seed_categories: Counter[str]
    liked_categories: Counter[str]


def _example_counts(
    examples: Examples, positives: Sequence[int], seeds: AbstractSet[int]
) -> _Shared:
    """Count the authors and categories of a profile's seed and liked papers."""
    shared = _Shared(Counter(), Counter(), Counter(), Counter())
    for example in positives:
        seed = example in seeds
        (shared.seed_authors if seed else shared.liked_authors).update(
            examples.authors[example])
        (shared.seed_categories if seed else shared.liked_categories).update(
            examples.categories[example])
    return shared


def _shared_part(
    candidates: Iterable[tuple[str, str]],
    by_seed: Counter[str],
    by_like: Counter[str],
    *,
    least: int,
    weight: Mapping[str, float] | None = None,
) -> str:
    """Return "NAME, as are N of your seed papers" for the candidate most examples share.

    ``candidates`` are (key counted, name printed) in the paper's order, which breaks
    ties; seed papers count before liked ones, each only from ``least`` on. A paper by
    someone who wrote the subscriber's seed papers, or in the category most of them are
    in, is usually there for that (the example papers' authors and categories weigh in
    the score); saying so is plainer than the words it shares with them. "" when no
    candidate is on ``least`` seed or ``least`` liked papers. With ``weight`` each
    candidate's counts are weighed as in the score (a rare category shared by 4 seed
    papers outweighs cs.LG shared by 10), the counts printed as they are.
    """
    best, most, shown = "", (0.0, 0.0), (0, 0)
    for key, name in candidates:
        seeds, likes = by_seed.get(key, 0), by_like.get(key, 0)  # no __missing__ call
        count = (seeds if seeds >= least else 0, likes if likes >= least else 0)
        factor = weight.get(key, 1.0) if weight is not None else 1.0
        weighed = (count[0] * factor, count[1] * factor)
        if weighed > most:
            best, most, shown = name, weighed, count
    if not best:
        return ""
    seeds, likes = shown
    if seeds:
        which = "as is one of your seed papers" if seeds == 1 else (
            f"as are {seeds} of your seed papers")
    else:
        which = "as is a paper you liked" if likes == 1 else f"as are {likes} papers you liked"
    return f"{best}, {which}"


def _close_line(context: Context, example: int, seed: bool) -> str:
    """Return the "close to" part naming one example paper (its title cut at 80)."""
    what = "your seed paper" if seed else "a paper you liked"
    title = context.examples.titles[example]
    if len(title) > 80:
        title = title[:77].rstrip() + "..."
    return f"close to {what}: {title}"


def _pair_terms(
    context: Context, rows: np.ndarray, cols: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return matched terms for many (profile row, batch column) pairs at once.

    The profile's own words first; where they share nothing with the paper, the
    centroid of its example papers, else the feedback papers its words retrieved.
    Returned as :func:`_top_terms` does (vocabulary columns per pair, and their count),
    with where each pair's terms came from (OWN_WORDS, EXAMPLES or RETRIEVED): only the
    first are words the subscriber typed, and the line says which.
    """
    products = _without_filler(_pair_products(context, context.compiled.spelled, rows, cols),
                               context.space)
    chosen, taken = _top_terms(products, context.space)
    whence = np.full(rows.size, OWN_WORDS, dtype=np.int8)
    missing = np.flatnonzero(products.getnnz(axis=1) == 0)
    if missing.size == 0:
        return chosen, taken, whence
    owners = np.unique(rows[missing])
    has_examples = np.isin(owners, context.compiled.positive_owner)
    parts = [centroid_rows(context.compiled, context.examples, owners[has_examples])]
    rest = owners[~has_examples]
    if context.feedback is not None and rest.size:
        parts.append(feedback_rows(context.feedback, context.pool, rest))
    else:
        parts.append(sp.csr_matrix((rest.size, products.shape[1])))
    fallback = sp.vstack(parts).tocsr()
    slot = np.zeros(int(owners.max()) + 1, dtype=np.intp)  # chunk row -> fallback row
    slot[np.concatenate([owners[has_examples], rest])] = np.arange(owners.size)
    found = _without_filler(
        _pair_products(context, fallback, slot[rows[missing]], cols[missing]), context.space)
    chosen[missing], taken[missing] = _top_terms(found, context.space)
    whence[missing] = np.where(np.isin(rows[missing], owners[has_examples]), EXAMPLES,
                               RETRIEVED)
    return chosen, taken, whence


def _without_filler(products: sp.csr_matrix, space: Space) -> sp.csr_matrix:
    """Drop the contributions of terms a reason does not name (FILLER), in place: a
    pair that shares only those with the profile's words is one that shares nothing.
    """
    if products.nnz:
        products.data[_filler_of(space).of(products.indices)] = 0.0
        products.eliminate_zeros()
    return products


class _Filler:
    """Per vocabulary column, whether all of its words are FILLER (filled on first use)."""

    def __init__(self, space: Space) -> None:
        self.space = space
        self.known = np.zeros(len(space.terms), dtype=bool)
        self.filler = np.zeros(len(space.terms), dtype=bool)

    def of(self, columns: np.ndarray) -> np.ndarray:
        """Return per column whether it is filler."""
        new = np.unique(columns[~self.known[columns]])
        if new.size:
            terms = self.space.terms
            self.filler[new] = [FILLER.issuperset(terms[c].split(" ")) for c in new.tolist()]
            self.known[new] = True
        flags: np.ndarray = self.filler[columns]
        return flags


_FILLER: dict[int, tuple[Space, _Filler]] = {}


def _filler_of(space: Space) -> _Filler:
    """Return the filler table kept for a space."""
    return kept_for(_FILLER, space, _Filler)


def _pair_products(
    context: Context, query: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray
) -> sp.csr_matrix:
    """Return ``query[rows] * docs[cols]`` elementwise, one sparse row per pair.

    The shorter side of each pair is walked and its terms looked up in the other's
    (row, term) keys (a binary search), so the work and memory go with the shorter
    rows. Short query rows (a profile's own words): the query's few terms, in the
    documents' keys (World.doc_keys), instead of gathering whole document rows. Long
    ones (a centroid of example or feedback papers, thousands of terms): the documents'
    terms, in the query's keys; gathering a query row per pair went with the centroid's
    terms (one profile of 3,000 seed papers listing a 1,795-paper day, --top 2000
    --all, peaked at 2.7 GB). The products are the same numbers either way, one
    multiplication each.
    """
    docs = context.docs
    if int(np.diff(query.indptr)[rows].sum()) > int(np.diff(docs.indptr)[cols].sum()):
        return _products_by_documents(docs, query, rows, cols)
    return _looked_up(query, rows, docs, context.doc_keys, cols)


def _products_by_documents(
    docs: sp.csr_matrix, query: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray
) -> sp.csr_matrix:
    """Return ``query[rows] * docs[cols]`` elementwise: each document's terms looked
    up in its query row (long query rows; see _pair_products)."""
    ordered = query if query.has_sorted_indices else query.sorted_indices()
    query_keys = (np.repeat(np.arange(ordered.shape[0], dtype=np.int64),
                            np.diff(ordered.indptr)) * np.int64(ordered.shape[1])
                  + ordered.indices)
    return _looked_up(docs, cols, ordered, query_keys, rows)


def _looked_up(
    walked: sp.csr_matrix, walked_rows: np.ndarray, other: sp.csr_matrix,
    other_keys: np.ndarray, other_rows: np.ndarray,
) -> sp.csr_matrix:
    """Return ``walked[walked_rows] * other[other_rows]`` elementwise, one row a pair,
    with the walked rows' columns in their stored order: each walked entry times the
    other row's entry at its column, found among ``other_keys`` (row * width + column
    of each of other's entries, ascending), 0 where it has none.
    """
    width = walked.shape[1]
    lengths = np.diff(walked.indptr)[walked_rows]
    total = int(lengths.sum())
    if total == 0 or other_keys.size == 0:
        return sp.csr_matrix((walked_rows.size, width))
    # Each gathered walked entry: its row's start in walked.data plus its offset.
    offsets = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    entries = np.repeat(walked.indptr[walked_rows], lengths) + offsets
    columns = walked.indices[entries]
    keys = np.repeat(other_rows.astype(np.int64), lengths) * np.int64(width) + columns
    at = np.minimum(np.searchsorted(other_keys, keys), other_keys.size - 1)
    found = other_keys[at] == keys
    products = sp.csr_matrix(
        (walked.data[entries] * np.where(found, other.data[at], 0.0), columns,
         np.concatenate([[0], np.cumsum(lengths)])),
        shape=(walked_rows.size, width),
    )
    products.eliminate_zeros()
    return products


class _Written:
    """Per batch paper (its column), its terms as it writes them (filled on first use):
    a reason names 'graphs, café', not the stems 'graph, cafe' the space counts.

    Kept: the words written otherwise than their term, the two-word terms looked up, and
    each paper's stems and spans to look those up in (vectors.WrittenText): ~13 MB in a
    scoring process for a day's 2,000 papers and 50,000 profiles. Every word and token
    as Python strings held ~110 MB.
    """

    def __init__(self, papers: Sequence[Paper]) -> None:
        self.papers = papers
        self.forms: dict[int, dict[str, str]] = {}  # column -> term -> as written
        self.texts: dict[int, WrittenText] = {}
        # column * len(vocabulary) + term column -> as written, for one vocabulary
        self.keyed: dict[int, str] = {}
        self.vocabulary: Sequence[str] | None = None

    def keyed_terms(self, keys: list[int], vocabulary: Sequence[str]) -> list[str]:
        """Return how each (paper column * len(vocabulary) + term column) is written.

        One dict lookup a key once seen (a chunk of 500 profiles names ~10,000). Kept
        for one vocabulary at a time: a key's term column means another term in another.
        """
        if vocabulary is not self.vocabulary:
            self.keyed, self.vocabulary = {}, vocabulary
        get = self.keyed.get
        return [get(key) or self._keyed_term(key, vocabulary) for key in keys]

    def _keyed_term(self, key: int, vocabulary: Sequence[str]) -> str:
        column, term = divmod(key, len(vocabulary))
        form = self.keyed[key] = self.term(column, vocabulary[term])
        return form

    def of(self, column: int) -> dict[str, str]:
        """Return the paper's word terms written otherwise than the term itself."""
        paper = self.papers[column]
        words, self.texts[column] = written_text(f"{paper.title}. {paper.abstract}")
        forms = self.forms[column] = {t: w for t, w in words.items() if w != t}
        return forms

    def term(self, column: int, term: str) -> str:
        """Return how the paper writes one of its terms (a word or a two-word term)."""
        forms = self.forms.get(column)
        if forms is None:
            forms = self.of(column)
        return forms.get(term) or (self.phrase(column, term) if " " in term else term)

    def phrase(self, column: int, term: str) -> str:
        """Return how the paper writes a two-word term (kept for the next time)."""
        form = self.forms[column][term] = self.texts[column].phrase(term)
        return form


_WRITTEN: dict[int, _Written] = {}


def _written_of(papers: Sequence[Paper]) -> _Written:
    """Return the written-forms table kept for a batch (one batch at a time)."""
    cached = _WRITTEN.get(id(papers))
    if cached is None or cached.papers is not papers:
        _WRITTEN.clear()
        cached = _WRITTEN[id(papers)] = _Written(papers)
    return cached


def _root(word: str) -> str:
    """Return the root two forms of a word share ('enhancing', 'enhanced', 'enhance' ->
    'enhanc'; 'embedding' -> 'embed'), so a reason does not name both: the space's
    stems drop plural endings only.
    """
    if len(word) >= 7 and word.endswith("ing"):
        word = word[:-3]
    elif len(word) >= 6 and word.endswith("ed"):
        word = word[:-2]
    else:
        return word[:-1] if len(word) > 4 and word.endswith("e") else word
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiouls":
        return word[:-1]  # 'embedd' -> 'embed', 'mapp' -> 'map'; not 'fall', 'process'
    return word[:-1] if len(word) > 4 and word.endswith("e") else word


class _Words:
    """Per vocabulary column, the ids of its one or two words' roots (filled on first
    use): terms sharing a root are one word to the reason.
    """

    def __init__(self, space: Space) -> None:
        self.space = space
        self.first = np.full(len(space.terms), -2, dtype=np.int64)  # -2: not looked up yet
        self.second = np.full(len(space.terms), -1, dtype=np.int64)  # -1: a unigram
        self.ids: dict[str, int] = {}

    def of(self, columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return the word ids of the given columns (first word, second or -1)."""
        new = np.unique(columns[self.first[columns] == -2])
        if new.size:
            ids = self.ids
            terms = self.space.terms
            first: list[int] = []
            second: list[int] = []
            for column in new.tolist():
                words = [_root(word) for word in terms[column].split(" ")]
                first.append(ids.setdefault(words[0], len(ids)))
                second.append(ids.setdefault(words[1], len(ids)) if len(words) > 1 else -1)
            self.first[new] = first
            self.second[new] = second
        return self.first[columns], self.second[columns]


_WORDS: dict[int, tuple[Space, _Words]] = {}


def _words_of(space: Space) -> _Words:
    """Return the word-id table kept for a space."""
    return kept_for(_WORDS, space, _Words)


def _top_terms(products: sp.csr_matrix, space: Space) -> tuple[np.ndarray, np.ndarray]:
    """Return per row up to TERMS vocabulary columns by contribution, and how many.

    Terms whose words are already named are skipped: a bigram makes its unigrams
    redundant in the reason, and vice versa. Ties go to the lower vocabulary column.
    Rows hold the columns in order, padded with -1.

    The greedy walk down each row's best LOOK contributions is stepped for all rows at
    once: a term is taken when none of its (one or two) word ids is among the up to
    2 * TERMS words taken before it in that row.
    """
    count = products.shape[0]
    chosen = np.full((count, TERMS), -1, dtype=np.int64)
    taken = np.zeros(count, dtype=np.intp)
    if products.nnz == 0:
        return chosen, taken
    lengths = np.diff(products.indptr)
    row_of = np.repeat(np.arange(count), lengths)
    order = _by_row_value_column(row_of, products.data, products.indices, count)
    place = np.arange(order.size) - products.indptr[row_of[order]]
    keep = order[(place < LOOK) & (products.data[order] > 0)]
    kept_rows = row_of[keep]
    kept_cols = products.indices[keep].astype(np.int64)
    first, second = _words_of(space).of(kept_cols)
    starts = np.searchsorted(kept_rows, np.arange(count))
    sizes = np.bincount(kept_rows, minlength=count)
    seen = np.full((count, 2 * TERMS), -1, dtype=np.int64)
    for step in range(int(sizes.max(initial=0))):
        rows = np.flatnonzero((sizes > step) & (taken < TERMS))
        if rows.size == 0:
            break
        at = starts[rows] + step
        one, two = first[at][:, None], second[at][:, None]
        known = seen[rows]
        clash = ((known == one) | ((two >= 0) & (known == two))).any(axis=1)
        rows, at = rows[~clash], at[~clash]
        slot = taken[rows]
        chosen[rows, slot] = kept_cols[at]
        seen[rows, 2 * slot] = first[at]
        seen[rows, 2 * slot + 1] = second[at]
        taken[rows] += 1
    return chosen, taken


def _by_row_value_column(
    row_of: np.ndarray, data: np.ndarray, columns: np.ndarray, count: int
) -> np.ndarray:
    """Return the order of the entries by row, then value (largest first), then column.

    What ``np.lexsort((columns, -data, row_of))`` returns (the keys are unique: one entry
    per row and column), from one integer key per entry: np.lexsort sorts three times.
    """
    size = data.size
    width = int(columns.max(initial=0)) + 1
    if (count + 1) * (size + 1) * width >= 2**62:  # the key would overflow
        order: np.ndarray = np.lexsort((columns, -data, row_of))
        return order
    negated = -data
    rank = np.searchsorted(np.sort(negated), negated)  # ties share a rank
    key = (row_of.astype(np.int64) * size + rank) * width + columns
    order = np.argsort(key)
    return order


def _closest_examples(context: Context, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Return per pair the example row its paper is closest to (-1: none close enough).

    The best candidate is found in the LSA space (a dense dot product per example); it
    is close when that cosine is at least CLOSE_DENSE and its tf-idf cosine at least
    CLOSE (without LSA: the best by, and at least, the tf-idf cosine).
    """
    closest = np.full(rows.size, -1, dtype=np.intp)
    owner = context.compiled.positive_owner
    if owner.size == 0:
        return closest
    order = np.argsort(owner, kind="stable")
    example = context.compiled.positive_example[order]
    bounds = np.searchsorted(owner[order], np.arange(int(rows.max()) + 2))
    sizes = bounds[rows + 1] - bounds[rows]
    pair_of = np.repeat(np.arange(rows.size), sizes)
    if pair_of.size == 0:
        return closest
    start = np.repeat(bounds[rows], sizes)
    offset = np.arange(pair_of.size) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    candidate = example[start + offset]
    dense = context.examples.dense
    docs = context.docs
    if dense.shape[1] and context.dense_docs.shape[1]:
        sims = _row_dots(dense, candidate, context.dense_docs, cols[pair_of])
    else:
        sims = np.asarray(
            context.examples.rows[candidate].multiply(docs[cols[pair_of]]).sum(axis=1)
        ).ravel()
    # Best candidate per pair: the first maximum (candidates keep the profile's order).
    by_pair = _by_row_value_column(pair_of, sims, np.arange(pair_of.size), rows.size)
    first = by_pair[np.searchsorted(pair_of[by_pair], np.flatnonzero(sizes > 0))]
    pairs = pair_of[first]
    best = candidate[first]
    if dense.shape[1] and context.dense_docs.shape[1]:
        # Papers this far apart in the LSA space are not close, whatever words they share.
        promising = sims[first] >= CLOSE_DENSE
        pairs, best = pairs[promising], best[promising]
    ascending = context.examples.ascending_rows(best) if docs.has_canonical_format else None
    example_rows = ascending if ascending is not None else context.examples.rows[best]
    cosine = np.asarray(example_rows.multiply(docs[cols[pairs]]).sum(axis=1)).ravel()
    close = cosine >= CLOSE
    closest[pairs[close]] = best[close]
    return closest


DOT_BLOCK = 1 << 19  # bytes of each gathered block of _row_dots (~cache-sized)


def _row_dots(
    left: np.ndarray, left_rows: np.ndarray, right: np.ndarray, right_rows: np.ndarray
) -> np.ndarray:
    """Return ``einsum("nk,nk->n", left[left_rows], right[right_rows])``, gathered in
    blocks of rows: the same sums, but the blocks stay in cache. Gathering all ~10,000
    pairs' candidates of a chunk at once (~20 MB each side) cost twice the time.
    """
    out = np.empty(left_rows.size, dtype=np.result_type(left, right))
    step = max(1, DOT_BLOCK // max(1, left.shape[1] * left.itemsize))
    a = np.empty((min(step, left_rows.size), left.shape[1]), dtype=left.dtype)
    b = np.empty((min(step, left_rows.size), right.shape[1]), dtype=right.dtype)
    for start in range(0, left_rows.size, step):
        end = min(start + step, left_rows.size)
        size = end - start
        np.take(left, left_rows[start:end], axis=0, out=a[:size])
        np.take(right, right_rows[start:end], axis=0, out=b[:size])
        np.einsum("nk,nk->n", a[:size], b[:size], out=out[start:end])
    return out
