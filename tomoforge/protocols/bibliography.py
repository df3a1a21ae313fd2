"""BibTeX of the methods tomoforge's protocols implement (cited by key in ``Protocol.citations``)."""

from tomoforge.engine.citations import register_bibtex

register_bibtex(
    """@software{tomoforge,
  title = {tomoforge: cryo-electron tomography from tilt-series movies to subtomogram averages},
  year = {2026},
  version = {0.1.0}
}""",
    """@article{kremer1996,
  author = {Kremer, James R. and Mastronarde, David N. and McIntosh, J. Richard},
  title = {Computer visualization of three-dimensional image data using {IMOD}},
  journal = {Journal of Structural Biology}, volume = {116}, number = {1}, pages = {71--76}, year = {1996}
}""",
    """@article{mastronarde2005,
  author = {Mastronarde, David N.},
  title = {Automated electron microscope tomography using robust prediction of specimen movements},
  journal = {Journal of Structural Biology}, volume = {152}, number = {1}, pages = {36--51}, year = {2005}
}""",
    """@article{grant2015,
  author = {Grant, Timothy and Grigorieff, Nikolaus},
  title = {Measuring the optimal exposure for single particle cryo-{EM} using a 2.6 {\\AA} reconstruction of rotavirus {VP6}},
  journal = {eLife}, volume = {4}, pages = {e06980}, year = {2015}
}""",
    """@article{rohou2015,
  author = {Rohou, Alexis and Grigorieff, Nikolaus},
  title = {{CTFFIND4}: Fast and accurate defocus estimation from electron micrographs},
  journal = {Journal of Structural Biology}, volume = {192}, number = {2}, pages = {216--221}, year = {2015}
}""",
    """@article{hagen2017,
  author = {Hagen, Wim J. H. and Wan, William and Briggs, John A. G.},
  title = {Implementation of a cryo-electron tomography tilt-scheme optimized for high resolution subtomogram averaging},
  journal = {Journal of Structural Biology}, volume = {197}, number = {2}, pages = {191--198}, year = {2017}
}""",
    """@article{zheng2017,
  author = {Zheng, Shawn Q. and Palovcak, Eugene and Armache, Jean-Paul and Verba, Kliment A. and Cheng, Yifan and Agard, David A.},
  title = {{MotionCor2}: anisotropic correction of beam-induced motion for improved cryo-electron microscopy},
  journal = {Nature Methods}, volume = {14}, pages = {331--332}, year = {2017}
}""",
    """@article{burt2024,
  author = {Burt, Alister and others},
  title = {An image processing pipeline for electron cryo-tomography in {RELION}-5},
  journal = {FEBS Open Bio}, volume = {14}, number = {11}, pages = {1788--1804}, year = {2024}
}""",
    """@article{mastronarde2017,
  author = {Mastronarde, David N. and Held, Susan R.},
  title = {Automated tilt series alignment and tomographic reconstruction in {IMOD}},
  journal = {Journal of Structural Biology}, volume = {197}, number = {2}, pages = {102--113}, year = {2017},
  doi = {10.1016/j.jsb.2016.07.011}}""",
    """@article{radermacher1988,
  author = {Radermacher, Michael},
  title = {Three-dimensional reconstruction of single particles from random and nonrandom tilt series},
  journal = {Journal of Electron Microscopy Technique}, volume = {9}, number = {4}, pages = {359--394}, year = {1988}
}""",
    """@article{gilbert1972,
  author = {Gilbert, Peter},
  title = {Iterative methods for the three-dimensional reconstruction of an object from projections},
  journal = {Journal of Theoretical Biology}, volume = {36}, number = {1}, pages = {105--117}, year = {1972}
}""",
    """@article{zeng2012,
  author = {Zeng, Gengsheng L.},
  title = {A filtered backprojection algorithm with characteristics of the iterative {Landweber} algorithm},
  journal = {Medical Physics}, volume = {39}, number = {2}, pages = {603--607}, year = {2012}
}""",
    """@article{xiong2009,
  author = {Xiong, Quanren and Morphew, Mary K. and Schwartz, Cindi L. and Hoenger, Andreas H. and Mastronarde, David N.},
  title = {{CTF} determination and correction for low dose tomographic tilt series},
  journal = {Journal of Structural Biology}, volume = {168}, number = {3}, pages = {378--387}, year = {2009},
  doi = {10.1016/j.jsb.2009.08.016}}""",
    """@article{roseman2003,
  author = {Roseman, Alan M.},
  title = {Particle finding in electron micrographs using a fast local correlation algorithm},
  journal = {Ultramicroscopy}, volume = {94}, number = {3--4}, pages = {225--236}, year = {2003}
}""",
    """@article{cruzleon2024,
  author = {Cruz-Le{\'o}n, Sergio and Majtner, Tom{\'a}{\v s} and Hoffmann, Patrick C. and Kreysing, Jan Philipp and
            Kehl, Sebastian and Tuijtel, Maarten W. and Schaefer, Stefan L. and Geißler, Katharina and Beck, Martin and
            Turo{\v n}ov{\'a}, Beata and Hummer, Gerhard},
  title = {High-confidence {3D} template matching for cryo-electron tomography},
  journal = {Nature Communications}, volume = {15}, pages = {3992}, year = {2024}
}""",
)
