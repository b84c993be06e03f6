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

CREATE TABLE `Transactions_hop_1h_20m_by_cc_num_merchant` (
  `cc_num` BIGINT,
  `merchant` STRING,
  `window_start` TIMESTAMP(6),
  `window_end` TIMESTAMP(6),
  `average_amount_by_merchant_hop_1h_20m` DOUBLE
)
WITH (
  'connector' = 'filesystem',
  'path' = 'Transactions_hop_1h_20m_by_cc_num_merchant',
  'format' = 'json',
  'json.timestamp-format.standard' = 'SQL'
);

CREATE TABLE `Transactions_tumble_6h_by_account_id` (
  `account_id` BIGINT,
  `window_start` TIMESTAMP(6),
  `window_end` TIMESTAMP(6),
  `failed_count_tumble_6h` BIGINT
)
WITH (
  'connector' = 'filesystem',
  'path' = 'Transactions_tumble_6h_by_account_id',
  'format' = 'json',
  'json.timestamp-format.standard' = 'SQL'
);

EXECUTE STATEMENT SET
BEGIN
INSERT INTO `Transactions_hop_1h_20m_by_cc_num_merchant`
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
    `cc_num`,
    `merchant`,
    CAST(`window_start` AS TIMESTAMP(6)) AS `window_start`,
    CAST(`window_end` AS TIMESTAMP(6)) AS `window_end`,
    AVG(`amt`) AS `average_amount_by_merchant_hop_1h_20m`
  FROM TABLE(HOP(TABLE `t0`, DESCRIPTOR(`ts`), INTERVAL '20' MINUTE, INTERVAL '1' HOUR))
  WHERE
    NOT `cc_num` IS NULL AND NOT `merchant` IS NULL
  GROUP BY
    `cc_num`,
    `merchant`,
    `window_start`,
    `window_end`
)
SELECT
  `cc_num`,
  `merchant`,
  `window_start`,
  `window_end`,
  `average_amount_by_merchant_hop_1h_20m`
FROM `t1`;
INSERT INTO `Transactions_tumble_6h_by_account_id`
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
    `status` = 'failed'
), `t2` AS (
  SELECT
    `account_id`,
    CAST(`window_start` AS TIMESTAMP(6)) AS `window_start`,
    CAST(`window_end` AS TIMESTAMP(6)) AS `window_end`,
    COUNT(*) AS `failed_count_tumble_6h`
  FROM TABLE(TUMBLE(TABLE `t1`, DESCRIPTOR(`ts`), INTERVAL '6' HOUR))
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
  `failed_count_tumble_6h`
FROM `t2`;
END;
