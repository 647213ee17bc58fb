"""Where the read-only reference material lives: ../shared beside the checkout (CI lays it out the same way)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
OFFICIAL = SHARED / "weights" / "edsr-baseline-liif.pth"  # the official EDSR-baseline-LIIF checkpoint
