SET 'execution.runtime-mode' = 'batch';

SET 'table.local-time-zone' = 'UTC';

CREATE TABLE `Transactions` (
  `cc_num` BIGINT,
  `merchant` STRING,
  `amt` DOUBLE,
  `status` STRING,
  `account_id` BIGINT,
  `ts` TIMESTAMP(6)
)
WITH (
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
    *,
    (
      (
        EXTRACT(EPOCH FROM `ts`) * 1000000 + EXTRACT(MICROSECOND FROM `ts`)
      ) - (
        MOD(
          (
            (
              MOD(
                (
                  EXTRACT(EPOCH FROM `ts`) * 1000000 + EXTRACT(MICROSECOND FROM `ts`)
                ),
                1200000000
              )
            ) + 1200000000
          ),
          1200000000
        )
      )
    ) - `__hop_i` * 1200000000 AS `__window_start_us`
  FROM `t0`
  CROSS JOIN (VALUES
    (0),
    (1),
    (2),
    (3)) AS `o`(`__hop_i`)
  WHERE
    NOT `cc_num` IS NULL AND NOT `merchant` IS NULL AND NOT `ts` IS NULL
), `t2` AS (
  SELECT
    *
  FROM `t1`
  WHERE
    `__window_start_us` + 3600000000 > (
      EXTRACT(EPOCH FROM `ts`) * 1000000 + EXTRACT(MICROSECOND FROM `ts`)
    )
), `t3` AS (
  SELECT
    `cc_num`,
    `merchant`,
    CAST(TO_TIMESTAMP_LTZ(`__window_start_us`, 6) AS TIMESTAMP(6)) AS `window_start`,
    CAST(TO_TIMESTAMP_LTZ(`__window_start_us` + 3600000000, 6) AS TIMESTAMP(6)) AS `window_end`,
    AVG(`amt`) AS `average_amount_by_merchant_hop_1h_20m`
  FROM `t2`
  GROUP BY
    `cc_num`,
    `merchant`,
    `__window_start_us`
)
SELECT
  `cc_num`,
  `merchant`,
  `window_start`,
  `window_end`,
  `average_amount_by_merchant_hop_1h_20m`
FROM `t3`;
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
    *,
    (
      EXTRACT(EPOCH FROM `ts`) * 1000000 + EXTRACT(MICROSECOND FROM `ts`)
    ) - (
      MOD(
        (
          (
            MOD(
              (
                EXTRACT(EPOCH FROM `ts`) * 1000000 + EXTRACT(MICROSECOND FROM `ts`)
              ),
              21600000000
            )
          ) + 21600000000
        ),
        21600000000
      )
    ) AS `__window_start_us`
  FROM `t1`
  WHERE
    NOT `account_id` IS NULL AND NOT `ts` IS NULL
), `t3` AS (
  SELECT
    `account_id`,
    CAST(TO_TIMESTAMP_LTZ(`__window_start_us`, 6) AS TIMESTAMP(6)) AS `window_start`,
    CAST(TO_TIMESTAMP_LTZ(`__window_start_us` + 21600000000, 6) AS TIMESTAMP(6)) AS `window_end`,
    COUNT(*) AS `failed_count_tumble_6h`
  FROM `t2`
  GROUP BY
    `account_id`,
    `__window_start_us`
)
SELECT
  `account_id`,
  `window_start`,
  `window_end`,
  `failed_count_tumble_6h`
FROM `t3`;
END;
