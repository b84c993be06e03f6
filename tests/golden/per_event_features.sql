WITH "t0" AS (
  SELECT
    "cc_num",
    "merchant",
    "amt",
    "status",
    "account_id",
    "ts"
  FROM "Transactions"
), "t1" AS (
  SELECT
    "cc_num",
    "merchant",
    "amt",
    "status",
    "account_id",
    "ts",
    (
      (
        "cc_num" % 4
      ) + 4
    ) % 4 AS "bucket_spread_30m__key_bucket"
  FROM "t0"
), "t2" AS (
  SELECT
    *,
    CASE
      WHEN "cc_num" IS NULL OR "merchant" IS NULL
      THEN NULL
      ELSE AVG("amt") OVER "w0"
    END AS "average_amount_by_merchant_1d"
  FROM "t1"
  WINDOW "w0" AS (
    PARTITION BY "cc_num", "merchant"
    ORDER BY EPOCH_US("ts")
    RANGE BETWEEN 86399999999 PRECEDING AND CURRENT ROW
  )
), "t3" AS (
  SELECT
    *,
    CASE
      WHEN "account_id" IS NULL
      THEN NULL
      ELSE CAST(SUM(
        CASE
          WHEN (
            "amt" >= 100
          ) AND (
            NOT (
              "status" = 'failed'
            )
          )
          THEN "amt"
        END
      ) OVER "w0" AS DOUBLE)
    END AS "big_spend_lifetime"
  FROM "t2"
  WINDOW "w0" AS (
    PARTITION BY "account_id"
    ORDER BY EPOCH_US("ts")
    RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
  )
), "t4" AS (
  SELECT
    *,
    CASE
      WHEN "bucket_spread_30m__key_bucket" IS NULL
      THEN NULL
      ELSE STDDEV_SAMP("amt") OVER "w0"
    END AS "bucket_spread_30m"
  FROM "t3"
  WINDOW "w0" AS (
    PARTITION BY "bucket_spread_30m__key_bucket"
    ORDER BY EPOCH_US("ts")
    RANGE BETWEEN 1799999999 PRECEDING AND CURRENT ROW
  )
), "t5" AS (
  SELECT
    *,
    CASE
      WHEN "account_id" IS NULL
      THEN NULL
      ELSE ARG_MIN(
        "merchant",
        CASE WHEN NOT "merchant" IS NULL THEN {'f0': "ts", 'f1': "merchant"} END
      ) OVER "w0"
    END AS "merchant_history_2h_first",
    CASE
      WHEN "account_id" IS NULL
      THEN NULL
      ELSE ARG_MAX(
        "merchant",
        CASE WHEN NOT "merchant" IS NULL THEN {'f0': "ts", 'f1': "merchant"} END
      ) OVER "w0"
    END AS "merchant_history_2h_last"
  FROM "t4"
  WINDOW "w0" AS (
    PARTITION BY "account_id"
    ORDER BY EPOCH_US("ts")
    RANGE BETWEEN 7199999999 PRECEDING AND CURRENT ROW
  )
), "t6" AS (
  SELECT
    "cc_num",
    "merchant",
    "amt",
    "status",
    "account_id",
    "ts",
    "average_amount_by_merchant_1d",
    "big_spend_lifetime",
    "bucket_spread_30m",
    "merchant_history_2h_first",
    "merchant_history_2h_last"
  FROM "t5"
)
SELECT
  "cc_num",
  "merchant",
  "amt",
  "status",
  "account_id",
  "ts",
  "average_amount_by_merchant_1d",
  "big_spend_lifetime",
  "bucket_spread_30m",
  "merchant_history_2h_first",
  "merchant_history_2h_last"
FROM "t6";
