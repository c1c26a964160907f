"""Agreement and diagnostic-accuracy statistics for ratings (readers, the AI, a reference standard).

Pure numpy/scipy/statsmodels/scikit-learn: no Django import, so the API, the management command and
the reader-study analysis share one implementation. See each module's docstring for definitions.
"""

from annotations.statistics.accuracy import (
    CalibrationCurve,
    PerPatientAccuracy,
    Proportion,
    ReaderAccuracy,
    binary_accuracy,
    calibration_data,
    paired_auc_vs_reference,
    per_patient_accuracy,
    reader_accuracy,
    wilson_proportion,
)
from annotations.statistics.agreement import (
    CategoryKappa,
    CohenKappa,
    FleissKappa,
    KrippendorffAlpha,
    Pabak,
    PairwiseKappa,
    PercentAgreement,
    cohen_kappa,
    cohen_kappa_from_codes,
    fleiss_kappa,
    krippendorff_alpha,
    pabak,
    pairwise_kappa_matrix,
    percent_agreement,
    readers_vs_reference,
)
from annotations.statistics.bootstrap import BootstrapInterval, cluster_bootstrap
from annotations.statistics.ratings import (
    RatingRecord,
    RatingsTable,
    StatisticsInputError,
    parse_ratings_csv,
    ratings_table_from_matrix,
    ratings_table_from_records,
)
from annotations.statistics.report import ReportOptions, format_report_table, ratings_report

__all__ = [
    "BootstrapInterval",
    "CalibrationCurve",
    "CategoryKappa",
    "CohenKappa",
    "FleissKappa",
    "KrippendorffAlpha",
    "Pabak",
    "PairwiseKappa",
    "PerPatientAccuracy",
    "PercentAgreement",
    "Proportion",
    "RatingRecord",
    "RatingsTable",
    "ReaderAccuracy",
    "ReportOptions",
    "StatisticsInputError",
    "binary_accuracy",
    "calibration_data",
    "cluster_bootstrap",
    "cohen_kappa",
    "cohen_kappa_from_codes",
    "fleiss_kappa",
    "format_report_table",
    "krippendorff_alpha",
    "pabak",
    "paired_auc_vs_reference",
    "pairwise_kappa_matrix",
    "parse_ratings_csv",
    "per_patient_accuracy",
    "percent_agreement",
    "ratings_report",
    "ratings_table_from_matrix",
    "ratings_table_from_records",
    "reader_accuracy",
    "readers_vs_reference",
    "wilson_proportion",
]
