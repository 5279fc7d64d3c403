-- The POS fast path's database functions, as they are now (merchants/pos/fastpath.py calls
-- pos_fast_purchases). Migrations keep the snapshots that created them; when these change, a
-- new migration executes this file's new text, and tests/merchants/pos/test_fast_sql.py holds
-- the database, this file and the Python constants (kinds, statuses, account-code prefixes,
-- record keys) to each other.

CREATE OR REPLACE FUNCTION pos_fast_purchase(
    p_terminal_id bigint, p_key_id text, p_nonce text, p_now timestamptz, p_created_at text,
    p_idem_key text, p_request_hash text, p_idem_raw text, p_card_id bigint,
    p_card_number text, p_chip_uid text, p_key_version integer, p_amount bigint,
    p_counter integer, p_balance_after bigint, p_seq bigint, p_card_time bigint,
    p_certificate text, p_today date, p_hotlisted text, p_purse bigint, p_takings bigint
) RETURNS text LANGUAGE plpgsql AS $$
-- Books one card-present purchase whose every rule holds, or returns NULL having written
-- nothing: the caller then takes the general path (merchants.pos.purchase), which decides
-- refusals, retries and replays. The rows written are those the general path writes.
DECLARE
    v_actor text := 'terminal:' || p_terminal_id;
    v_check record;
    v_acct record;
    v_merchant bigint;
    v_purse bigint;
    v_purse_code text;
    v_takings bigint;
    v_takings_code text;
    v_balance bigint;
    v_purse_after bigint;
    v_takings_after bigint;
    v_transfer bigint;
    v_tx bigint;
    v_answer text;
BEGIN
    -- The terminal still active under this key, and the card the certificate was checked
    -- against (same chip, same key version), in one read.
    SELECT t.merchant_id, c.status, c.expires_on INTO v_check
      FROM terminals t, cards c
     WHERE t.id = p_terminal_id AND t.key_id = p_key_id AND t.status = 'active'
       AND c.id = p_card_id AND c.card_number = p_card_number AND c.chip_uid = p_chip_uid
       AND c.load_key_version = p_key_version;
    -- p_hotlisted: the statuses terminals refuse, comma-separated (cards.service.HOTLISTED)
    IF NOT FOUND OR v_check.status = ANY (string_to_array(p_hotlisted, ','))
       OR v_check.expires_on < p_today THEN
        RETURN NULL;
    END IF;
    v_merchant := v_check.merchant_id;
    -- Not a retry; the chip transaction not booked online or received offline before.
    IF EXISTS (SELECT 1 FROM idempotency_records WHERE key = p_idem_key)
       OR EXISTS (SELECT 1 FROM pos_transactions
                   WHERE card_id = p_card_id AND card_counter = p_counter
                     AND ((kind IN ('purchase', 'bill_payment') AND status = 'accepted')
                          OR kind = 'offline_purchase')) THEN
        RETURN NULL;
    END IF;
    -- The card's purse and the terminal's takings (ids the caller cached, checked here),
    -- locked in account-id order as every transfer takes them.
    FOR v_acct IN SELECT id, card_id, code, balance FROM accounts
                   WHERE id IN (p_purse, p_takings) ORDER BY id FOR UPDATE LOOP
        IF v_acct.id = p_purse AND v_acct.card_id = p_card_id THEN
            v_purse := v_acct.id; v_purse_code := v_acct.code; v_balance := v_acct.balance;
        ELSIF v_acct.id = p_takings AND v_acct.code = 'terminal:' || p_terminal_id THEN
            v_takings := v_acct.id; v_takings_code := v_acct.code;
        END IF;
    END LOOP;
    IF v_purse IS NULL OR v_takings IS NULL OR v_balance < p_amount THEN RETURN NULL; END IF;
    INSERT INTO pos_nonces (key_id, nonce, seen_at) VALUES (p_key_id, p_nonce, p_now)
        ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN RETURN NULL; END IF;

    INSERT INTO transfers (kind, card_id, amount, idempotency_key, actor, memo, created_at)
    VALUES ('purchase', p_card_id, p_amount, NULL, v_actor,
            'terminal ' || p_terminal_id || ' seq ' || p_seq, p_now)
    RETURNING id INTO v_transfer;
    UPDATE accounts SET balance = balance - p_amount WHERE id = v_purse
    RETURNING balance INTO v_purse_after;
    UPDATE accounts SET balance = balance + p_amount WHERE id = v_takings
    RETURNING balance INTO v_takings_after;
    INSERT INTO postings (transfer_id, account_id, amount, balance_after, created_at)
    VALUES (v_transfer, v_purse, -p_amount, v_purse_after, p_now),
           (v_transfer, v_takings, p_amount, v_takings_after, p_now);
    INSERT INTO pos_transactions (kind, status, reason, terminal_id, merchant_id, card_id,
        card_number, amount, refunded, card_counter, balance_after, terminal_seq, card_time,
        certificate, batch_id, original_id, transfer_id, idempotency_key, created_at)
    VALUES ('purchase', 'accepted', NULL, p_terminal_id, v_merchant, p_card_id,
        p_card_number, p_amount, 0, p_counter, p_balance_after, p_seq, p_card_time,
        p_certificate, NULL, NULL, v_transfer, p_idem_raw, p_now)
    RETURNING id INTO v_tx;
    v_answer := json_build_object(
        'transaction_id', v_tx, 'kind', 'purchase', 'status', 'accepted', 'reason', NULL,
        'amount', p_amount, 'refunded', 0, 'card_number', p_card_number,
        'terminal_id', p_terminal_id, 'merchant_id', v_merchant,
        'original_transaction_id', NULL, 'created_at', p_created_at,
        'purse_balance', v_purse_after)::text;
    INSERT INTO idempotency_records (key, operation, request_hash, status_code, response,
                                     actor, created_at)
    VALUES (p_idem_key, 'pos.purchase', p_request_hash, 200, v_answer, v_actor, p_now)
        ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        -- A retry with this key won the race: undo all of this, the general path replays.
        RAISE unique_violation USING MESSAGE = 'idempotency key taken concurrently';
    END IF;
    -- The audit row `ledger.post` writes, as canonical JSON (sorted keys, no spaces).
    INSERT INTO audit_pending (at, actor, actor_role, action, purpose, target_type, target_id,
                               detail)
    VALUES (p_now, v_actor, 'terminal', 'money.purchase', NULL, 'transfer', v_transfer::text,
            '{"amount":' || p_amount || ',"card_id":' || p_card_id || ',"legs":[['
            || to_json(v_purse_code)::text || ',' || -p_amount || '],['
            || to_json(v_takings_code)::text || ',' || p_amount || ']]}');
    RETURN v_answer;
END
$$;

CREATE OR REPLACE FUNCTION pos_fast_purchases(p_items json, p_now timestamptz,
                                              p_created_at text, p_today date,
                                              p_hotlisted text) RETURNS text[]
LANGUAGE plpgsql AS $$
-- Several purchases in one transaction (one commit for all: what lets a busy terminal
-- network go faster than one disk flush per purchase). Answers in the order given; any
-- error undoes them all, and the caller then books each on its own.
DECLARE
    r record;
    v_out text[] := '{}';
BEGIN

    -- Every purse and takings account of the batch, locked in id order before any purchase
    -- (each purchase's own lock then finds it held): batches sharing accounts queue, never
    -- deadlock.
    PERFORM 1 FROM accounts
      WHERE id IN (SELECT (x ->> 'pa')::bigint FROM json_array_elements(p_items) AS x
                   UNION SELECT (x ->> 'ta')::bigint FROM json_array_elements(p_items) AS x)
      ORDER BY id FOR UPDATE;

    FOR r IN SELECT * FROM json_to_recordset(p_items) AS x(
        t bigint, k text, n text, ik text, rh text, ir text, c bigint, cn text, u text,
        v integer, a bigint, cc integer, b bigint, s bigint, ct bigint, cert text,
        pa bigint, ta bigint)
    LOOP
        v_out := v_out || pos_fast_purchase(r.t, r.k, r.n, p_now, p_created_at, r.ik, r.rh,
                                            r.ir, r.c, r.cn, r.u, r.v, r.a, r.cc, r.b, r.s,
                                            r.ct, r.cert, p_today, p_hotlisted, r.pa, r.ta);
    END LOOP;
    RETURN v_out;
END
$$;
