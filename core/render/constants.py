"""The rasterisation rules every backend follows (gsplat's classic 3DGS maths).

A Gaussian covers the pixels whose centres lie within ``EXTENT_SIGMAS`` standard
deviations of its projected mean (Mahalanobis distance under the low-passed 2D
covariance), and among those only where its alpha reaches ``ALPHA_MIN``. This rule is
per pixel, so the image does not depend on how a backend tiles it.

gsplat 1.5.3's CUDA kernels differ slightly: they clamp alpha at 0.999 and keep every
pixel with alpha >= 1/255 (up to about 3.33 sigma), so the ``gsplat`` backend agrees
with the others only to within those two rules.
"""

from __future__ import annotations

#: Gaussians whose camera-space depth is at most this are culled (gsplat's default).
NEAR_PLANE = 0.01

#: Variance added to the projected 2D covariance's diagonal, in px^2 (anti-aliasing low-pass).
LOW_PASS = 0.3

#: Footprint radius in standard deviations.
EXTENT_SIGMAS = 3.0

#: The largest ``power = 0.5 * d^T conic d`` inside the footprint.
MAX_POWER = 0.5 * EXTENT_SIGMAS**2

#: Alpha is clamped to this so that one Gaussian never makes a pixel fully opaque.
ALPHA_MAX = 0.99

#: Contributions with a smaller alpha are skipped.
ALPHA_MIN = 1.0 / 255.0

#: A pixel stops compositing before the Gaussian that would bring its transmittance below this.
TRANSMITTANCE_MIN = 1e-4

#: The EWA Jacobian is evaluated at the mean with ``x/z`` and ``y/z`` clamped to the image
#: extent plus this fraction of ``tan(fov/2)`` on each side (gsplat's rule, which keeps
#: Gaussians far outside the view from getting huge footprints).
JACOBIAN_FOV_MARGIN = 0.3
