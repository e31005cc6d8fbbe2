"""smlmnet: simulate, localize, link and measure diffusion in single-molecule movies.

Stages live in sub-packages:

- :mod:`smlmnet.simulate`  trajectories (Brownian, fBM, confined, directed, switching,
  anisotropic, immobile) rendered into camera movies with ground truth.
- :mod:`smlmnet.data`      data contracts shared by all stages and on-the-fly training data.
- :mod:`smlmnet.io`        TIFF/CSV readers and writers (atomic, unit-explicit).
- :mod:`smlmnet.diffusion` MSD and diffusion estimators.

Conventions (see ``smlmnet.data.contracts``): positions in nm with the image origin at the
top-left *corner* of pixel (0, 0), so the centre of pixel 0 lies at 0.5 px; time in s;
diffusion coefficients in µm²/s; frames are 0-based.
"""

__version__ = "0.1.0"
