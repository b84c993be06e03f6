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

CREATE TABLE `Transactions_features` (
  `cc_num` BIGINT,
  `merchant` STRING,
  `amt` DOUBLE,
  `status` STRING,
  `account_id` BIGINT,
  `ts` TIMESTAMP(6),
  `failed_count_1h` BIGINT
)
WITH (
  'connector' = 'filesystem',
  'path' = 'Transactions_features',
  'format' = 'json',
  'json.timestamp-format.standard' = 'SQL'
);

INSERT INTO `Transactions_features`
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
    *,
    CASE
      WHEN `account_id` IS NULL
      THEN NULL
      ELSE COUNT(CASE WHEN `status` = 'failed' THEN 1 END) OVER `w0`
    END AS `failed_count_1h`
  FROM `t0`
  WINDOW `w0` AS (
    PARTITION BY `account_id`
    ORDER BY `ts` NULLS LAST
    RANGE BETWEEN INTERVAL '0 00:59:59.999' DAY(3) TO SECOND(3) PRECEDING AND CURRENT ROW
  )
), `t2` AS (
  SELECT
    `cc_num`,
    `merchant`,
    `amt`,
    `status`,
    `account_id`,
    `ts`,
    `failed_count_1h`
  FROM `t1`
)
SELECT
  `cc_num`,
  `merchant`,
  `amt`,
  `status`,
  `account_id`,
  `ts`,
  `failed_count_1h`
FROM `t2`;
