"""Block corpora of SPEC section 6: Parquet shards plus a checksummed manifest."""
from parity.corpus.reader import Corpus, open_corpus
from parity.corpus.shard import Shard
from parity.corpus.writer import CorpusWriter

__all__ = ["Corpus", "CorpusWriter", "Shard", "open_corpus"]
