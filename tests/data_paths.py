"""Where the shared real data live: ``../shared/data`` beside the repository."""

from pathlib import Path

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DIGINETICA_SAMPLE = SHARED_DATA / "diginetica-sample" / "sample_train-item-views.csv"
YOOCHOOSE_RAW_SAMPLE = SHARED_DATA / "raw-samples" / "yoochoose-clicks-sample.dat"
DIGINETICA_RAW_SAMPLE = SHARED_DATA / "raw-samples" / "train-item-views-sample.csv"
YOOCHOOSE_100K = SHARED_DATA / "yoochoose-100k"
