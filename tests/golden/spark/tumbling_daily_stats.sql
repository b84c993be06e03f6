WITH `t0` AS (
  SELECT
    `cc_num`,
    `merchant`,
    `amt`,
    `status`,
    `account_id`,
    `ts`
  FROM `Transactions`
), `t1` AS (
  SELECT
    *
  FROM `t0`
  WHERE
    `status` <> 'failed'
), `t2` AS (
  SELECT
    *,
    UNIX_MICROS(`ts`) - (
      (
        (
          UNIX_MICROS(`ts`) % 86400000000
        ) + 86400000000
      ) % 86400000000
    ) AS `__window_start_us`
  FROM `t1`
  WHERE
    NOT `account_id` IS NULL AND NOT `ts` IS NULL
), `t3` AS (
  SELECT
    `account_id`,
    TIMESTAMP_MICROS(`__window_start_us`) AS `window_start`,
    TIMESTAMP_MICROS(`__window_start_us` + 86400000000) AS `window_end`,
    SUM(`amt`) AS `daily_stats_tumble_1d_total`,
    COUNT(*) AS `daily_stats_tumble_1d_n`,
    CAST(COUNT(DISTINCT `merchant`) AS BIGINT) AS `daily_stats_tumble_1d_merchants`,
    MAX(`amt`) AS `daily_stats_tumble_1d_largest`
  FROM `t2`
  GROUP BY
    `account_id`,
    `__window_start_us`
)
SELECT
  `account_id`,
  `window_start`,
  `window_end`,
  `daily_stats_tumble_1d_total`,
  `daily_stats_tumble_1d_n`,
  `daily_stats_tumble_1d_merchants`,
  `daily_stats_tumble_1d_largest`
FROM `t3`;
