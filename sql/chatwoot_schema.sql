-- The Chatwoot tables the bridge reads, as Chatwoot v4.15.1 creates them
-- (db/schema.rb, version 2026_06_11_184600): exact column names, types,
-- NOT NULLs, defaults, indexes and the display_id triggers. Used by the test
-- harness to build a database that behaves like a real Chatwoot one.
-- `portals_members` (no primary key) is here so tests can show the bridge
-- never publishes FOR ALL TABLES (which would break its UPDATEs/DELETEs).

CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE EXTENSION IF NOT EXISTS pgcrypto;

CREATE TABLE accounts (
    id serial PRIMARY KEY,
    name character varying NOT NULL,
    created_at timestamp without time zone NOT NULL,
    updated_at timestamp without time zone NOT NULL,
    locale integer DEFAULT 0,
    domain character varying(100),
    support_email character varying(100),
    feature_flags bigint DEFAULT 0 NOT NULL,
    auto_resolve_duration integer,
    limits jsonb DEFAULT '{}'::jsonb,
    custom_attributes jsonb DEFAULT '{}'::jsonb,
    status integer DEFAULT 0,
    internal_attributes jsonb DEFAULT '{}'::jsonb NOT NULL,
    settings jsonb DEFAULT '{}'::jsonb
);
CREATE INDEX index_accounts_on_status ON accounts (status);

CREATE TABLE contacts (
    id serial PRIMARY KEY,
    name character varying DEFAULT ''::character varying,
    email character varying,
    phone_number character varying,
    account_id integer NOT NULL,
    created_at timestamp without time zone NOT NULL,
    updated_at timestamp without time zone NOT NULL,
    additional_attributes jsonb DEFAULT '{}'::jsonb,
    identifier character varying,
    custom_attributes jsonb DEFAULT '{}'::jsonb,
    last_activity_at timestamp without time zone,
    contact_type integer DEFAULT 0,
    middle_name character varying DEFAULT ''::character varying,
    last_name character varying DEFAULT ''::character varying,
    location character varying DEFAULT ''::character varying,
    country_code character varying DEFAULT ''::character varying,
    blocked boolean DEFAULT false NOT NULL,
    company_id bigint
);
CREATE INDEX index_contacts_on_lower_email_account_id ON contacts (lower((email)::text), account_id);
CREATE INDEX index_contacts_on_account_id_and_contact_type ON contacts (account_id, contact_type);
CREATE INDEX index_contacts_on_nonempty_fields ON contacts (account_id, email, phone_number, identifier)
    WHERE (((email)::text <> ''::text) OR ((phone_number)::text <> ''::text) OR ((identifier)::text <> ''::text));
CREATE INDEX index_contacts_on_account_id_and_last_activity_at ON contacts (account_id, last_activity_at DESC NULLS LAST);
CREATE INDEX index_contacts_on_account_id ON contacts (account_id);
CREATE INDEX index_resolved_contact_account_id ON contacts (account_id)
    WHERE (((email)::text <> ''::text) OR ((phone_number)::text <> ''::text) OR ((identifier)::text <> ''::text));
CREATE INDEX index_contacts_on_blocked ON contacts (blocked);
CREATE INDEX index_contacts_on_company_id ON contacts (company_id);
CREATE UNIQUE INDEX uniq_email_per_account_contact ON contacts (email, account_id);
CREATE UNIQUE INDEX uniq_identifier_per_account_contact ON contacts (identifier, account_id);
CREATE INDEX index_contacts_on_name_email_phone_number_identifier ON contacts
    USING gin (name gin_trgm_ops, email gin_trgm_ops, phone_number gin_trgm_ops, identifier gin_trgm_ops);
CREATE INDEX index_contacts_on_phone_number_and_account_id ON contacts (phone_number, account_id);

CREATE TABLE conversations (
    id serial PRIMARY KEY,
    account_id integer NOT NULL,
    inbox_id integer NOT NULL,
    status integer DEFAULT 0 NOT NULL,
    assignee_id integer,
    created_at timestamp without time zone NOT NULL,
    updated_at timestamp without time zone NOT NULL,
    contact_id bigint,
    display_id integer NOT NULL,
    contact_last_seen_at timestamp without time zone,
    agent_last_seen_at timestamp without time zone,
    additional_attributes jsonb DEFAULT '{}'::jsonb,
    contact_inbox_id bigint,
    uuid uuid DEFAULT gen_random_uuid() NOT NULL,
    identifier character varying,
    last_activity_at timestamp without time zone DEFAULT CURRENT_TIMESTAMP NOT NULL,
    team_id bigint,
    campaign_id bigint,
    snoozed_until timestamp without time zone,
    custom_attributes jsonb DEFAULT '{}'::jsonb,
    assignee_last_seen_at timestamp without time zone,
    first_reply_created_at timestamp without time zone,
    priority integer,
    sla_policy_id bigint,
    waiting_since timestamp(6) without time zone,
    cached_label_list text,
    assignee_agent_bot_id bigint
);
CREATE UNIQUE INDEX index_conversations_on_account_id_and_display_id ON conversations (account_id, display_id);
CREATE INDEX index_conversations_on_id_and_account_id ON conversations (account_id, id);
CREATE INDEX conv_acid_inbid_stat_asgnid_idx ON conversations (account_id, inbox_id, status, assignee_id);
CREATE INDEX index_conversations_on_account_id ON conversations (account_id);
CREATE INDEX index_conversations_on_assignee_id_and_account_id ON conversations (assignee_id, account_id);
CREATE INDEX index_conversations_on_campaign_id ON conversations (campaign_id);
CREATE INDEX index_conversations_on_contact_id ON conversations (contact_id);
CREATE INDEX index_conversations_on_contact_inbox_id ON conversations (contact_inbox_id);
CREATE INDEX index_conversations_on_first_reply_created_at ON conversations (first_reply_created_at);
CREATE INDEX index_conversations_on_identifier_and_account_id ON conversations (identifier, account_id);
CREATE INDEX index_conversations_on_inbox_id ON conversations (inbox_id);
CREATE INDEX index_conversations_on_priority ON conversations (priority);
CREATE INDEX index_conversations_on_status_and_account_id ON conversations (status, account_id);
CREATE INDEX index_conversations_on_status_and_priority ON conversations (status, priority);
CREATE INDEX index_conversations_on_team_id ON conversations (team_id);
CREATE UNIQUE INDEX index_conversations_on_uuid ON conversations (uuid);
CREATE INDEX index_conversations_on_waiting_since ON conversations (waiting_since);

CREATE TABLE messages (
    id serial PRIMARY KEY,
    content text,
    account_id integer NOT NULL,
    inbox_id integer NOT NULL,
    conversation_id integer NOT NULL,
    message_type integer NOT NULL,
    created_at timestamp without time zone NOT NULL,
    updated_at timestamp without time zone NOT NULL,
    private boolean DEFAULT false NOT NULL,
    status integer DEFAULT 0,
    source_id text,
    content_type integer DEFAULT 0 NOT NULL,
    content_attributes json DEFAULT '{}'::json,
    sender_type character varying,
    sender_id bigint,
    external_source_ids jsonb DEFAULT '{}'::jsonb,
    additional_attributes jsonb DEFAULT '{}'::jsonb,
    processed_message_content text,
    sentiment jsonb DEFAULT '{}'::jsonb
);
CREATE INDEX index_messages_on_additional_attributes_campaign_id ON messages
    USING gin (((additional_attributes -> 'campaign_id'::text)));
CREATE INDEX idx_messages_account_content_created ON messages (account_id, content_type, created_at);
CREATE INDEX index_messages_on_account_created_type ON messages (account_id, created_at, message_type);
CREATE INDEX index_messages_on_account_id_and_inbox_id ON messages (account_id, inbox_id);
CREATE INDEX index_messages_on_account_id ON messages (account_id);
CREATE INDEX index_messages_on_content ON messages USING gin (content gin_trgm_ops);
CREATE INDEX index_messages_on_conversation_account_type_created ON messages (conversation_id, account_id, message_type, created_at);
CREATE INDEX index_messages_on_conversation_id ON messages (conversation_id);
CREATE INDEX index_messages_on_created_at ON messages (created_at);
CREATE INDEX index_messages_on_inbox_id ON messages (inbox_id);
CREATE INDEX index_messages_on_sender_type_and_sender_id ON messages (sender_type, sender_id);
CREATE INDEX index_messages_on_source_id ON messages (source_id);

CREATE TABLE attachments (
    id serial PRIMARY KEY,
    file_type integer DEFAULT 0,
    external_url character varying,
    coordinates_lat double precision DEFAULT 0.0,
    coordinates_long double precision DEFAULT 0.0,
    message_id integer NOT NULL,
    account_id integer NOT NULL,
    created_at timestamp without time zone NOT NULL,
    updated_at timestamp without time zone NOT NULL,
    fallback_title character varying,
    extension character varying,
    meta jsonb DEFAULT '{}'::jsonb
);
CREATE INDEX index_attachments_on_account_id ON attachments (account_id);
CREATE INDEX index_attachments_on_message_id ON attachments (message_id);

CREATE TABLE integrations_hooks (
    id bigserial PRIMARY KEY,
    status integer DEFAULT 1,
    inbox_id integer,
    account_id integer,
    app_id character varying,
    hook_type integer DEFAULT 0,
    reference_id character varying,
    access_token character varying,
    created_at timestamp(6) without time zone NOT NULL,
    updated_at timestamp(6) without time zone NOT NULL,
    settings jsonb DEFAULT '{}'::jsonb
);

CREATE TABLE inboxes (
    id serial PRIMARY KEY,
    channel_id integer NOT NULL,
    account_id integer NOT NULL,
    name character varying NOT NULL,
    created_at timestamp without time zone NOT NULL,
    updated_at timestamp without time zone NOT NULL,
    channel_type character varying,
    enable_auto_assignment boolean DEFAULT true,
    greeting_enabled boolean DEFAULT false,
    greeting_message character varying,
    email_address character varying,
    working_hours_enabled boolean DEFAULT false,
    out_of_office_message character varying,
    timezone character varying DEFAULT 'UTC'::character varying,
    enable_email_collect boolean DEFAULT true,
    csat_survey_enabled boolean DEFAULT false,
    allow_messages_after_resolved boolean DEFAULT true,
    auto_assignment_config jsonb DEFAULT '{}'::jsonb,
    lock_to_single_conversation boolean DEFAULT false NOT NULL,
    portal_id bigint,
    sender_name_type integer DEFAULT 0 NOT NULL,
    business_name character varying,
    csat_config jsonb DEFAULT '{}'::jsonb NOT NULL
);
CREATE INDEX index_inboxes_on_account_id ON inboxes (account_id);
CREATE INDEX index_inboxes_on_channel_id_and_channel_type ON inboxes (channel_id, channel_type);
CREATE INDEX index_inboxes_on_portal_id ON inboxes (portal_id);

CREATE TABLE users (
    id serial PRIMARY KEY,
    provider character varying DEFAULT 'email'::character varying NOT NULL,
    uid character varying DEFAULT ''::character varying NOT NULL,
    encrypted_password character varying DEFAULT ''::character varying NOT NULL,
    reset_password_token character varying,
    reset_password_sent_at timestamp without time zone,
    remember_created_at timestamp without time zone,
    sign_in_count integer DEFAULT 0 NOT NULL,
    current_sign_in_at timestamp without time zone,
    last_sign_in_at timestamp without time zone,
    current_sign_in_ip character varying,
    last_sign_in_ip character varying,
    confirmation_token character varying,
    confirmed_at timestamp without time zone,
    confirmation_sent_at timestamp without time zone,
    unconfirmed_email character varying,
    name character varying NOT NULL,
    display_name character varying,
    email character varying,
    tokens json,
    created_at timestamp without time zone NOT NULL,
    updated_at timestamp without time zone NOT NULL,
    pubsub_token character varying,
    availability integer DEFAULT 0,
    ui_settings jsonb DEFAULT '{}'::jsonb,
    custom_attributes jsonb DEFAULT '{}'::jsonb,
    type character varying,
    message_signature text,
    otp_secret character varying,
    consumed_timestep integer,
    otp_required_for_login boolean DEFAULT false,
    otp_backup_codes text
);
CREATE INDEX index_users_on_email ON users (email);
CREATE INDEX index_users_on_otp_required_for_login ON users (otp_required_for_login);
CREATE UNIQUE INDEX index_users_on_otp_secret ON users (otp_secret);
CREATE UNIQUE INDEX index_users_on_pubsub_token ON users (pubsub_token);
CREATE UNIQUE INDEX index_users_on_reset_password_token ON users (reset_password_token);
CREATE UNIQUE INDEX index_users_on_uid_and_provider ON users (uid, provider);

CREATE TABLE active_storage_blobs (
    id bigserial PRIMARY KEY,
    key character varying NOT NULL,
    filename character varying NOT NULL,
    content_type character varying,
    metadata text,
    byte_size bigint NOT NULL,
    checksum character varying,
    created_at timestamp without time zone NOT NULL,
    service_name character varying NOT NULL
);
CREATE UNIQUE INDEX index_active_storage_blobs_on_key ON active_storage_blobs (key);

CREATE TABLE active_storage_attachments (
    id bigserial PRIMARY KEY,
    name character varying NOT NULL,
    record_type character varying NOT NULL,
    record_id bigint NOT NULL,
    blob_id bigint NOT NULL,
    created_at timestamp without time zone NOT NULL
);
CREATE INDEX index_active_storage_attachments_on_blob_id ON active_storage_attachments (blob_id);
CREATE UNIQUE INDEX index_active_storage_attachments_uniqueness ON active_storage_attachments (record_type, record_id, name, blob_id);
ALTER TABLE active_storage_attachments
    ADD CONSTRAINT fk_rails_c3b3935057 FOREIGN KEY (blob_id) REFERENCES active_storage_blobs (id);

-- No primary key (Rails `id: false`): an UPDATE or DELETE on it fails on the
-- primary if it is in a publication that publishes updates/deletes.
CREATE TABLE portals_members (
    portal_id bigint,
    user_id bigint
);
CREATE UNIQUE INDEX index_portals_members_on_portal_id_and_user_id ON portals_members (portal_id, user_id);
CREATE INDEX index_portals_members_on_portal_id ON portals_members (portal_id);
CREATE INDEX index_portals_members_on_user_id ON portals_members (user_id);

-- hairtrigger triggers from db/schema.rb: a per-account sequence feeds
-- conversations.display_id, set BEFORE INSERT (so pgoutput INSERTs carry it).
CREATE FUNCTION accounts_after_insert_row_tr() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    execute format('create sequence IF NOT EXISTS conv_dpid_seq_%s', NEW.id);
    RETURN NULL;
END;
$$;
CREATE TRIGGER accounts_after_insert_row_tr AFTER INSERT ON accounts
    FOR EACH ROW EXECUTE FUNCTION accounts_after_insert_row_tr();

CREATE FUNCTION conversations_before_insert_row_tr() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    NEW.display_id := nextval('conv_dpid_seq_' || NEW.account_id);
    RETURN NEW;
END;
$$;
CREATE TRIGGER conversations_before_insert_row_tr BEFORE INSERT ON conversations
    FOR EACH ROW EXECUTE FUNCTION conversations_before_insert_row_tr();
