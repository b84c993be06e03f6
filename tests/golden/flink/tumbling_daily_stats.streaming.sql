SET 'execution.runtime-mode' = 'streaming';

SET 'table.local-time-zone' = 'UTC';

SET 'pipeline.auto-watermark-interval' = '0';

CREATE TABLE `Transactions` (
  `cc_num` BIGINT,
  `merchant` STRING,
  `amt` DOUBLE,
  `status` STRING,
  `account_id` BIGINT,
  `ts` TIMESTAMP(3),
  WATERMARK FOR `ts` AS `ts` - INTERVAL '0.001' SECOND
)
WITH (
  'scan.watermark.emit.strategy' = 'on-event',
  'connector' = 'filesystem',
  'path' = 'Transactions',
  'format' = 'json',
  'json.timestamp-format.standard' = 'SQL'
);

CREATE TABLE `Transactions_tumble_1d_by_account_id` (
  `account_id` BIGINT,
  `window_start` TIMESTAMP(6),
  `window_end` TIMESTAMP(6),
  `daily_stats_tumble_1d_total` DOUBLE,
  `daily_stats_tumble_1d_n` BIGINT,
  `daily_stats_tumble_1d_merchants` BIGINT,
  `daily_stats_tumble_1d_largest` DOUBLE
)
WITH (
  'connector' = 'filesystem',
  'path' = 'Transactions_tumble_1d_by_account_id',
  'format' = 'json',
  'json.timestamp-format.standard' = 'SQL'
);

INSERT INTO `Transactions_tumble_1d_by_account_id`
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
    `account_id`,
    CAST(`window_start` AS TIMESTAMP(6)) AS `window_start`,
    CAST(`window_end` AS TIMESTAMP(6)) AS `window_end`,
    SUM(`amt`) AS `daily_stats_tumble_1d_total`,
    COUNT(*) AS `daily_stats_tumble_1d_n`,
    COUNT(DISTINCT `merchant`) AS `daily_stats_tumble_1d_merchants`,
    MAX(`amt`) AS `daily_stats_tumble_1d_largest`
  FROM TABLE(TUMBLE(TABLE `t1`, DESCRIPTOR(`ts`), INTERVAL '1' DAY))
  WHERE
    NOT `account_id` IS NULL
  GROUP BY
    `account_id`,
    `window_start`,
    `window_end`
)
SELECT
  `account_id`,
  `window_start`,
  `window_end`,
  `daily_stats_tumble_1d_total`,
  `daily_stats_tumble_1d_n`,
  `daily_stats_tumble_1d_merchants`,
  `daily_stats_tumble_1d_largest`
FROM `t2`;
