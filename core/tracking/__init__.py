"""Frame sources, face mesh and segmentation, portrait crops, head pose, smoothing, tracking."""
