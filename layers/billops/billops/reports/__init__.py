"""Daily figures per subaccount (issue 16): revenue, declines, reversals, MRR and the chargeback ratio.

Kept apart from the subscription fold: the figures are counted from the deliveries of each events-stream batch
(their NEW_IMAGE), never from the subscription record, so either can change without the other.

* report_settings        BILLOPS_REPORT_* / BILLOPS_CHARGEBACK_THRESHOLDS settings
* money                  amounts in the report currency (CCBill's accounting amounts, or the exchange-rate setting)
* delivery_figures       what one stored delivery adds to the figures of its day (and of the day its paid period
                         ends): a pure function, the definitions of docs/reports.md
* chargeback_thresholds  the card schemes' monitoring levels (defaults, the setting) and the month-to-date ratios
* batch_counting         the projector's one call per stream batch: aggregate in memory, count exactly once
                         (billops.storage.reports_table), alert on ratio crossings, emit the metrics
* report_metrics         embedded-metric-format documents (log lines: no AWS call)
* report_reading         figures of a range of days back from the table: per day, summed, cumulative
* report_documents       the merchant API's and the CLI's JSON documents of those figures
* delivery_facts         the DeliveryCounted domain events of the optional analytics export

docs/reports.md is the guide (definitions, exactly-once design, AWS calls per batch, thresholds and their sources).
"""
