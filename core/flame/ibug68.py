"""The 68 iBUG (300-W / dlib) face landmarks as points of MediaPipe's 478-point face mesh.

The OMG-Avatar release's ``FLAME_with_eye.pt`` embeds iBUG-68 landmarks on FLAME
(``full_lmk_*_with_eye``: the 68 points, then the two pupils), while our tracker sees MediaPipe's
mesh; this table pairs each iBUG point with one MediaPipe point, so that FLAME can be fitted with
that file alone, without FLAME's ``mediapipe_landmark_embedding.npz``
(:func:`core.flame.files.load_release_landmark_embedding`). It lives with FLAME because it is
part of a landmark embedding; it holds data only.

The table is in iBUG order (image left and right as the face is seen, so "left" is the
subject's right): jaw 0-16 from the ear on the image's left, under the chin, to the other ear;
brows 17-21 and 22-26, each from the image's left; nose bridge 27-30 downwards to the tip,
nostrils 31-35 from the image's left; eyes 36-41 and 42-47, each from its corner on the image's
left, along the upper lid then back along the lower one (36 = the subject's right eye's outer
corner = MediaPipe 33); outer lips 48-59 from the corner on the image's left along the upper lip,
inner lips 60-67 likewise. Mirrored iBUG points use left-right pairs of the MediaPipe mesh.

Brows, nose, eyes and lips are the widely used correspondence. The jaw differs from its
common version (162, 234, 93, 58, 172, 136, 149, 148, ...): iBUG places the jaw points at
fixed heights between the eyes and the chin (dlib's mean shape: point 0 level with the outer
eye corners, 2 just below the nose tip, 4 a little below the mouth corners, 7 almost level
with the chin), and on the sample portraits MediaPipe's face-oval points nearest
to those heights are 127, 234, 93, 132, 172, 136, 150, 148 (162, the common point 0, sits above
the eye corners by about an eighth of the eyes-to-chin height). The jaw contour is not a fixed
surface point, so FLAME fitting uses only points 17-67 (:data:`FITTED_POINTS`, as the release's
tracker does); the jaw completes the 68 points for uses that want them all.
``tests/test_release_landmarks.py`` checks the geometry of every group on a real portrait.
"""

from __future__ import annotations

#: MediaPipe face-mesh index of each iBUG-68 point, in iBUG order.
MEDIAPIPE_OF_IBUG68 = (
    127, 234, 93, 132, 172, 136, 150, 148, 152, 377, 379, 365, 397, 361, 323, 454, 356,  # jaw 0-16
    70, 63, 105, 66, 107,  # brow 17-21 (the subject's right)
    336, 296, 334, 293, 300,  # brow 22-26 (the subject's left)
    168, 197, 5, 4,  # nose bridge 27-30, down to the tip
    75, 97, 2, 326, 305,  # nostrils 31-35
    33, 160, 158, 133, 153, 144,  # eye 36-41 (the subject's right): outer corner, upper lid, inner corner, lower lid
    362, 385, 387, 263, 373, 380,  # eye 42-47 (the subject's left): inner corner, upper lid, outer corner, lower lid
    61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181,  # outer lips 48-59
    78, 82, 13, 312, 308, 317, 14, 87,  # inner lips 60-67
)  # fmt: skip

#: The iBUG points of each part of the face, as ranges of indices into the table.
JAW = range(17)
BROWS = (range(17, 22), range(22, 27))
NOSE_BRIDGE = range(27, 31)
NOSTRILS = range(31, 36)
EYES = (range(36, 42), range(42, 48))
OUTER_LIPS = range(48, 60)
INNER_LIPS = range(60, 68)

#: The points FLAME is fitted to (as the release's tracker does): brows, nose, eyes and lips.
FITTED_POINTS = range(17, 68)
