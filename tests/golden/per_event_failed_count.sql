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
    CASE
      WHEN "account_id" IS NULL
      THEN NULL
      ELSE COUNT(CASE WHEN "status" = 'failed' THEN 1 END) OVER "w0"
    END AS "failed_count_1h"
  FROM "t0"
  WINDOW "w0" AS (
    PARTITION BY "account_id"
    ORDER BY EPOCH_US("ts")
    RANGE BETWEEN 3599999999 PRECEDING AND CURRENT ROW
  )
), "t2" AS (
  SELECT
    "cc_num",
    "merchant",
    "amt",
    "status",
    "account_id",
    "ts",
    "failed_count_1h"
  FROM "t1"
)
SELECT
  "cc_num",
  "merchant",
  "amt",
  "status",
  "account_id",
  "ts",
  "failed_count_1h"
FROM "t2";
