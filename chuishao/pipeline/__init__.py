"""Text pipeline: normalisation, privacy masking, segmentation, features."""
