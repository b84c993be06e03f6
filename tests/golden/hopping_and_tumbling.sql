-- output: Transactions_hop_1h_20m_by_cc_num_merchant
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
    *,
    UNNEST(
      GENERATE_SERIES(
        (
          EPOCH_US("ts") - (
            (
              (
                EPOCH_US("ts") % 1200000000
              ) + 1200000000
            ) % 1200000000
          )
        ) - 3600000000,
        EPOCH_US("ts") - (
          (
            (
              EPOCH_US("ts") % 1200000000
            ) + 1200000000
          ) % 1200000000
        ),
        1200000000
      )
    ) AS "__window_start_us"
  FROM "t0"
  WHERE
    NOT "cc_num" IS NULL AND NOT "merchant" IS NULL AND NOT "ts" IS NULL
), "t2" AS (
  SELECT
    *
  FROM "t1"
  WHERE
    "__window_start_us" + 3600000000 > EPOCH_US("ts")
), "t3" AS (
  SELECT
    "cc_num",
    "merchant",
    MAKE_TIMESTAMP("__window_start_us") AS "window_start",
    MAKE_TIMESTAMP("__window_start_us" + 3600000000) AS "window_end",
    AVG("amt") AS "average_amount_by_merchant_hop_1h_20m"
  FROM "t2"
  GROUP BY
    "cc_num",
    "merchant",
    "__window_start_us"
)
SELECT
  "cc_num",
  "merchant",
  "window_start",
  "window_end",
  "average_amount_by_merchant_hop_1h_20m"
FROM "t3";

-- output: Transactions_tumble_6h_by_account_id
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
    *
  FROM "t0"
  WHERE
    "status" = 'failed'
), "t2" AS (
  SELECT
    *,
    EPOCH_US("ts") - (
      (
        (
          EPOCH_US("ts") % 21600000000
        ) + 21600000000
      ) % 21600000000
    ) AS "__window_start_us"
  FROM "t1"
  WHERE
    NOT "account_id" IS NULL AND NOT "ts" IS NULL
), "t3" AS (
  SELECT
    "account_id",
    MAKE_TIMESTAMP("__window_start_us") AS "window_start",
    MAKE_TIMESTAMP("__window_start_us" + 21600000000) AS "window_end",
    COUNT(*) AS "failed_count_tumble_6h"
  FROM "t2"
  GROUP BY
    "account_id",
    "__window_start_us"
)
SELECT
  "account_id",
  "window_start",
  "window_end",
  "failed_count_tumble_6h"
FROM "t3";
