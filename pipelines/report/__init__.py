"""The report: runs fetched from the tracking store, the balance table's data, the verdict and
where it is stated, tables, figures, the report folder, the comparison of two studies."""
