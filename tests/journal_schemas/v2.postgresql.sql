CREATE TABLE public.actions (
    id integer NOT NULL,
    run_id integer NOT NULL,
    kind character varying(32) NOT NULL,
    key character varying(255) NOT NULL,
    target text NOT NULL,
    status character varying(16) NOT NULL,
    attempts integer NOT NULL,
    error text,
    detail text,
    started_at timestamp with time zone NOT NULL,
    finished_at timestamp with time zone
);
CREATE SEQUENCE public.actions_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;
ALTER SEQUENCE public.actions_id_seq OWNED BY public.actions.id;
CREATE TABLE public.claims (
    key character varying(255) NOT NULL,
    owner character varying(255) NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    claimed_at timestamp with time zone NOT NULL
);
CREATE TABLE public.downloads (
    file_id bigint NOT NULL,
    relative_path text,
    size bigint,
    crc32 character varying(8),
    bytes_done bigint NOT NULL,
    verified_at timestamp with time zone,
    updated_at timestamp with time zone,
    failures integer NOT NULL
);
CREATE TABLE public.runs (
    id integer NOT NULL,
    command character varying(64) NOT NULL,
    started_at timestamp with time zone NOT NULL,
    finished_at timestamp with time zone,
    exit_code integer,
    summary text,
    dry_run boolean NOT NULL,
    host character varying(255) NOT NULL
);
CREATE SEQUENCE public.runs_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;
ALTER SEQUENCE public.runs_id_seq OWNED BY public.runs.id;
CREATE TABLE public.schema_info (
    id integer NOT NULL,
    version integer NOT NULL
);
CREATE SEQUENCE public.schema_info_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;
ALTER SEQUENCE public.schema_info_id_seq OWNED BY public.schema_info.id;
CREATE TABLE public.submissions (
    info_hash character varying(64) NOT NULL,
    transfer_id bigint,
    name text NOT NULL,
    submitted_at timestamp with time zone NOT NULL
);
ALTER TABLE ONLY public.actions ALTER COLUMN id SET DEFAULT nextval('public.actions_id_seq'::regclass);
ALTER TABLE ONLY public.runs ALTER COLUMN id SET DEFAULT nextval('public.runs_id_seq'::regclass);
ALTER TABLE ONLY public.schema_info ALTER COLUMN id SET DEFAULT nextval('public.schema_info_id_seq'::regclass);
INSERT INTO public.actions VALUES (1, 1, 'download', 'download:7', 'Film/film.mkv', 'done', 1, NULL, '10 B', '2024-03-01 02:01:00+00', '2024-03-01 02:02:00+00');
INSERT INTO public.actions VALUES (2, 1, 'submit', 'submit:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 'film.torrent', 'failed', 1, 'put.io answered 500', NULL, '2024-03-01 02:01:00+00', '2024-03-01 02:02:00+00');
INSERT INTO public.actions VALUES (3, 2, 'download', 'download:8', 'Film/extra.mkv', 'started', 1, NULL, NULL, '2024-03-01 02:11:00+00', NULL);
INSERT INTO public.claims VALUES ('download:8', 'host-a:42:feed', '2034-02-27 02:10:00+00', '2024-03-01 02:10:00+00');
INSERT INTO public.downloads VALUES (7, 'Film/film.mkv', 10, '0badf00d', 10, '2024-03-01 02:02:00+00', '2024-03-01 02:02:00+00', 0);
INSERT INTO public.downloads VALUES (8, 'Film/extra.mkv', 100, NULL, 40, NULL, '2024-03-01 02:11:00+00', 0);
INSERT INTO public.downloads VALUES (9, NULL, NULL, NULL, 0, NULL, NULL, 2);
INSERT INTO public.runs VALUES (1, 'sync', '2024-03-01 02:00:00+00', '2024-03-01 02:03:00+00', 0, '1 downloaded', false, 'vm');
INSERT INTO public.runs VALUES (2, 'sync', '2024-03-01 02:10:00+00', NULL, NULL, NULL, false, 'vm');
INSERT INTO public.schema_info VALUES (1, 2);
INSERT INTO public.submissions VALUES ('aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 41, 'Film', '2024-03-01 02:01:00+00');
INSERT INTO public.submissions VALUES ('bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb', NULL, 'Other', '2024-03-01 02:01:00+00');
SELECT pg_catalog.setval('public.actions_id_seq', 3, true);
SELECT pg_catalog.setval('public.runs_id_seq', 2, true);
SELECT pg_catalog.setval('public.schema_info_id_seq', 1, true);
ALTER TABLE ONLY public.actions
    ADD CONSTRAINT actions_pkey PRIMARY KEY (id);
ALTER TABLE ONLY public.claims
    ADD CONSTRAINT claims_pkey PRIMARY KEY (key);
ALTER TABLE ONLY public.downloads
    ADD CONSTRAINT downloads_pkey PRIMARY KEY (file_id);
ALTER TABLE ONLY public.runs
    ADD CONSTRAINT runs_pkey PRIMARY KEY (id);
ALTER TABLE ONLY public.schema_info
    ADD CONSTRAINT schema_info_pkey PRIMARY KEY (id);
ALTER TABLE ONLY public.submissions
    ADD CONSTRAINT submissions_pkey PRIMARY KEY (info_hash);
CREATE INDEX ix_actions_key ON public.actions USING btree (key);
CREATE INDEX ix_actions_run_id ON public.actions USING btree (run_id);
CREATE INDEX ix_actions_status ON public.actions USING btree (status);
CREATE INDEX ix_claims_owner ON public.claims USING btree (owner);
ALTER TABLE ONLY public.actions
    ADD CONSTRAINT actions_run_id_fkey FOREIGN KEY (run_id) REFERENCES public.runs(id);
