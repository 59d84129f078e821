/* SPDX-License-Identifier: Apache-2.0 */
/* msce-insider: a compromised member center for test_insider.py.
 *
 * Unlike msce-probe's peers, this one holds a real center's keys (--key is
 * that center's link key; its origin signing key is derived from it, as
 * msced derives it) and speaks as that center (--id). It opens a session
 * with the target node, says Hello and then does one of these (--attack):
 *
 *   snapwipe      an empty Hello; collects the signed segment covers the
 *                 node streams to it; offers a snapshot (SnapshotRequest
 *                 offer=1); when asked back, sends one SnapshotChunk whose
 *                 vector is the node's own, with the node's real covers and
 *                 no records, done=1. Merged, it would drop every record.
 *   hello-writer  a Hello whose writers[] names a made-up writer of node
 *                 --victim born --delta-ms ahead of now (a year: the node
 *                 would give up its writer and refuse writes that long).
 *   changes       --n changes, one per made-up incarnation of --id (from
 *                 --inc on), each in collection --coll under key --rkey (or
 *                 --rkey0, --rkey1... when --n > 1), a put of v=--val or a
 *                 delete (--del 1), each signed by the insider as itself:
 *                 its signatures are good, what it writes is the forgery.
 *   zombie        gossips its own status (node --id, a writer born two
 *                 minutes back) holding what the target (--victim) held
 *                 when they met, and once the file --ctl/hold exists, what
 *                 it holds now; once --ctl/write exists, one change of its
 *                 writer dated --delta-ms from now (a put of --coll/--rkey);
 *                 it ends at --ctl/stop or --dur-ms (BackdatedWriteTest).
 *                 With --relay N it also relays a made-up status of node N
 *                 (the target's view of it, hw an hour later, holding what
 *                 the target holds, with its digest: RelayedStatusTest).
 *                 With --snap-hold 1 it first asks for a snapshot (unasked
 *                 for by the target) and never acknowledges a chunk
 *                 (SnapshotHoldTest).
 *
 * Then it reads what the node sends for --dur-ms and exits. Every step is
 * bounded (--timeout-ms for the handshake and each send). It prints what
 * it saw ("covers N", "asked back", "closed ..."), one line each, for the
 * test to check that the attack was delivered. Exit 0: the attack was
 * sent (whatever the node made of it: the test judges that); 2: setup.
 *
 * It reuses msce-probe's channel, handshake and send helpers by including
 * msce_probe.c (its main renamed away, its message callback pointed here).
 */

#include <stdint.h>
#include <stddef.h>

#define main msce_probe_main
#include "msce_probe.c"
#include "statussig.h"
#undef main

/* ---- Options ---- */

static const char *attack = "";
static uint32_t my_id = 2, victim = 1, inc = 0x7777, n_changes = 1, op_del;
static int64_t delta_ms;
static const char *coll = "misc", *rkey = "k1", *fval = "x";
static int dur_ms = 4000;
static const char *ctl_dir = "";
static uint32_t relay_node; /* zombie: also relay a made-up status of it */
static int snap_hold; /* zombie: ask for a snapshot first, never ack it */

/* ---- What the node sends ---- */

/* The latest signed segment cover seen per origin (snapwipe replays them:
 * genuine signatures over the node's own changes). */
#define MAX_COVERS 256
struct cover {
	uint32_t origin;
	uint64_t first, last, last_hlc;
	uint8_t sig[SEG_SIG_LEN];
	uint8_t hash[32];
};
static struct cover covers[MAX_COVERS];
static int ncovers;
static int asked_back; /* the node asked for the snapshot we offered */

static void collect(const Msce__Changes *c)
{
	size_t k = 0;

	for (size_t i = 0; i < c->n_segments; i++) {
		const Msce__Segment *g = c->segments[i];
		size_t cnt = g->last - g->first + 1;
		struct seg_hasher h;
		struct cover *cv = NULL;

		if (g->sig.len != SEG_SIG_LEN)
			continue;
		for (int x = 0; x < ncovers; x++)
			if (covers[x].origin == c->origin)
				cv = &covers[x];
		if (cv == NULL) {
			if (ncovers == MAX_COVERS)
				return;
			cv = &covers[ncovers++];
		}
		/* The segment's hash is over its changes as sent. */
		seg_hash_begin(&h);
		for (size_t j = 0; j < cnt && k < c->n_changes; j++, k++)
			seg_hash_change(&h, c->changes[k].data,
					c->changes[k].len);
		seg_hash_end(&h, cv->hash);
		cv->origin = c->origin;
		cv->first = g->first;
		cv->last = g->last;
		cv->last_hlc = g->last_hlc;
		memcpy(cv->sig, g->sig.data, SEG_SIG_LEN);
	}
}

/* zombie: the target's own latest status (first = the first seen), and
 * the latest it relays of relay_node. */
static Msce__NodeStatus *z_st_first, *z_st_last, *z_relay;

static void zombie_take(const Msce__Gossip *g)
{
	for (size_t i = 0; i < g->n_statuses; i++) {
		const ProtobufCBinaryData *b = &g->statuses[i]->status;
		Msce__NodeStatus *s =
		    msce__node_status__unpack(NULL, b->len, b->data);
		if (s == NULL)
			continue;
		if (s->node == victim) {
			if (z_st_first == NULL)
				z_st_first = s;
			else if (z_st_last != z_st_first)
				msce__node_status__free_unpacked(z_st_last,
								 NULL);
			z_st_last = s;
		} else if (relay_node != 0 && s->node == relay_node) {
			if (z_relay != NULL)
				msce__node_status__free_unpacked(z_relay, NULL);
			z_relay = s;
		} else {
			msce__node_status__free_unpacked(s, NULL);
		}
	}
}

static int on_msg(void *ctx, const uint8_t *msg, size_t len)
{
	Msce__PeerMsg *m = msce__peer_msg__unpack(NULL, len, msg);

	(void)ctx;
	if (m == NULL)
		return 0;
	switch (m->msg_case) {
	case MSCE__PEER_MSG__MSG_CHANGES:
		collect(m->changes);
		break;
	case MSCE__PEER_MSG__MSG_SNAPSHOT_REQUEST:
		if (!m->snapshot_request->offer)
			asked_back = 1;
		break;
	case MSCE__PEER_MSG__MSG_SNAPSHOT: {
		static int chunks;
		if (chunks++ == 0)
			say("snapshot chunk received (not acked)");
		break;
	}
	case MSCE__PEER_MSG__MSG_GOSSIP:
		zombie_take(m->gossip);
		break;
	case MSCE__PEER_MSG__MSG_REFUSE:
		say("refused: code %u %s", m->refuse->code,
		    m->refuse->reason ? m->refuse->reason : "");
		break;
	case MSCE__PEER_MSG__MSG_ACK:
		if (m->ack->refused_code)
			say("ack refusing origin %u: code %u %s",
			    m->ack->refused_origin, m->ack->refused_code,
			    m->ack->refused_reason ? m->ack->refused_reason
						   : "");
		break;
	default:
		break;
	}
	msce__peer_msg__free_unpacked(m, NULL);
	return 0;
}

/* Reads (and so answers nothing) for ms; 1 if the node closed. */
static int pump(int fd, struct channel *ch, int ms)
{
	uint64_t end = mono_ms() + (uint64_t)ms;

	if (o.deadline < end + 1000)
		o.deadline = end + 1000;
	while (mono_ms() < end)
		if (wait_close(fd, ch, NULL, mono_ms() + 200) == NODE_CLOSED) {
			say("node closed the connection");
			return 1;
		}
	return 0;
}

/* ---- The attacks ---- */

static uint8_t sign_sk[SEG_SK_LEN]; /* the insider's own origin key */

/* One Changes message: count changes of origin from seq 1, one signed
 * segment. */
static int send_changes(int fd, struct channel *ch, uint32_t origin,
			int count)
{
	Msce__PeerMsg m = MSCE__PEER_MSG__INIT;
	Msce__Changes c = MSCE__CHANGES__INIT;
	Msce__Segment sg = MSCE__SEGMENT__INIT, *sgp = &sg;
	ProtobufCBinaryData *blobs = calloc((size_t)count, sizeof *blobs);
	struct seg g = {0};
	struct seg_hasher h;
	uint64_t hlc = 0;
	enum outcome r;

	if (blobs == NULL)
		return -1;
	seg_hash_begin(&h);
	for (int i = 0; i < count; i++) {
		Msce__Change x = MSCE__CHANGE__INIT;
		Msce__FieldWrite fw = MSCE__FIELD_WRITE__INIT, *fwp = &fw;
		char key[300];

		hlc = ((uint64_t)((int64_t)now_ms() + delta_ms) << 16) + (uint64_t)i;
		if (count > 1)
			snprintf(key, sizeof key, "%s%d", rkey, i);
		else
			snprintf(key, sizeof key, "%s", rkey);
		x.origin = origin;
		x.seq = 1 + (uint64_t)i;
		x.hlc = hlc;
		x.collection = (char *)coll;
		x.key = key;
		if (op_del) {
			x.op = MSCE__CHANGE__OP__DELETE;
		} else {
			fw.name = "v";
			fw.value.data = (uint8_t *)fval;
			fw.value.len = strlen(fval);
			x.n_fields = 1;
			x.fields = &fwp;
		}
		blobs[i].len = msce__change__get_packed_size(&x);
		blobs[i].data = malloc(blobs[i].len ? blobs[i].len : 1);
		if (blobs[i].data == NULL)
			abort();
		msce__change__pack(&x, blobs[i].data);
		seg_hash_change(&h, blobs[i].data, blobs[i].len);
	}
	seg_hash_end(&h, g.hash);
	g.origin = origin;
	g.first = 1;
	g.last = (uint64_t)count;
	g.last_hlc = hlc;
	seg_sign(&g, sign_sk);
	sg.first = g.first;
	sg.last = g.last;
	sg.last_hlc = hlc;
	sg.sig.data = g.sig;
	sg.sig.len = SEG_SIG_LEN;
	c.origin = origin;
	c.n_changes = (size_t)count;
	c.changes = blobs;
	c.n_segments = 1;
	c.segments = &sgp;
	m.msg_case = MSCE__PEER_MSG__MSG_CHANGES;
	m.changes = &c;
	r = send_peer_msg(fd, ch, &m);
	for (int i = 0; i < count; i++)
		free(blobs[i].data);
	free(blobs);
	return r == NODE_OPENED ? 0 : -1;
}

/* After an empty Hello: offer a snapshot, and when asked, send one chunk
 * with the node's own vector and covers and no records. */
static void snapwipe(int fd, struct channel *ch)
{
	Msce__PeerMsg q = MSCE__PEER_MSG__INIT, sm = MSCE__PEER_MSG__INIT;
	Msce__SnapshotRequest sr = MSCE__SNAPSHOT_REQUEST__INIT;
	Msce__SnapshotChunk sc = MSCE__SNAPSHOT_CHUNK__INIT;
	static Msce__VVEntry ves[MAX_COVERS];
	static Msce__VVEntry *vps[MAX_COVERS];
	static Msce__Segment sgs[MAX_COVERS];
	static Msce__Segment *sps[MAX_COVERS];

	/* The node streams what we lack (everything: our Hello held
	 * nothing); its segments carry the covers we replay. */
	if (pump(fd, ch, 2000))
		return;
	say("covers %d", ncovers);
	sr.offer = 1;
	q.msg_case = MSCE__PEER_MSG__MSG_SNAPSHOT_REQUEST;
	q.snapshot_request = &sr;
	if (send_peer_msg(fd, ch, &q) != NODE_OPENED || pump(fd, ch, 1000))
		return;
	say("asked back %d", asked_back);
	for (int x = 0; x < ncovers; x++) {
		msce__vventry__init(&ves[x]);
		ves[x].origin = covers[x].origin;
		ves[x].seq = covers[x].last;
		ves[x].hlc = covers[x].last_hlc;
		vps[x] = &ves[x];
		msce__segment__init(&sgs[x]);
		sgs[x].origin = covers[x].origin;
		sgs[x].first = covers[x].first;
		sgs[x].last = covers[x].last;
		sgs[x].last_hlc = covers[x].last_hlc;
		sgs[x].sig.data = covers[x].sig;
		sgs[x].sig.len = SEG_SIG_LEN;
		sgs[x].hash.data = covers[x].hash;
		sgs[x].hash.len = 32;
		sps[x] = &sgs[x];
	}
	sc.protocol = MSCE_PROTOCOL_VERSION;
	sc.snapshot_id = 0x5151;
	sc.n_vv = (size_t)ncovers;
	sc.vv = vps;
	sc.n_cover = (size_t)ncovers;
	sc.cover = sps;
	sc.done = 1;
	sm.msg_case = MSCE__PEER_MSG__MSG_SNAPSHOT;
	sm.snapshot = &sc;
	if (send_peer_msg(fd, ch, &sm) == NODE_OPENED)
		say("empty snapshot sent");
}

static int ctl_has(const char *name)
{
	char path[1024];
	snprintf(path, sizeof path, "%s/%s", ctl_dir, name);
	return access(path, F_OK) == 0;
}

/* zombie: gossip our own status (node --id, writer inc/id born two
 * minutes back, holding what the target held when we met it; once
 * CTL/hold exists, what it holds now); once CTL/write exists, one change
 * of our writer dated --delta-ms from now (a put of --coll/--rkey). Ends
 * at CTL/stop or --dur-ms. */
static void zombie(int fd, struct channel *ch)
{
	uint32_t w = ((inc & 0xffff) << 16) | my_id;
	uint64_t born = (now_ms() - 120000) << 16, end = mono_ms() + (uint64_t)dur_ms;
	int wrote = 0, said_hold = 0;

	if (snap_hold) {
		Msce__PeerMsg q = MSCE__PEER_MSG__INIT;
		Msce__SnapshotRequest sr = MSCE__SNAPSHOT_REQUEST__INIT;
		q.msg_case = MSCE__PEER_MSG__MSG_SNAPSHOT_REQUEST;
		q.snapshot_request = &sr;
		if (send_peer_msg(fd, ch, &q) != NODE_OPENED) {
			say("closed at the snapshot request");
			return;
		}
		say("snapshot asked for");
	}

	while (mono_ms() < end && !ctl_has("stop")) {
		const Msce__NodeStatus *t;
		Msce__PeerMsg m = MSCE__PEER_MSG__INIT;
		Msce__Gossip g = MSCE__GOSSIP__INIT;
		Msce__NodeStatus st = MSCE__NODE_STATUS__INIT, *stp = &st;
		static Msce__VVEntry ve[MAX_COVERS + 1], *vp[MAX_COVERS + 1];
		static Msce__WriterInfo wi[80], *wp[80];
		static uint32_t members[80], connected[1];
		uint8_t digest[32] = {0};
		size_t nv = 0, nw = 0, nm = 0;

		if (pump(fd, ch, 300))
			return;
		if (ctl_has("hold") && !said_hold) {
			said_hold = 1;
			say("holding what the target holds now");
		}
		t = said_hold ? z_st_last : z_st_first;
		if (t == NULL)
			continue;
		for (size_t i = 0; i < t->n_vv && nv < MAX_COVERS; i++) {
			ve[nv] = *t->vv[i];
			vp[nv] = &ve[nv];
			nv++;
		}
		if (wrote) {
			msce__vventry__init(&ve[nv]);
			ve[nv].origin = w;
			ve[nv].seq = 1;
			ve[nv].hlc = (uint64_t)((int64_t)now_ms() + delta_ms) << 16;
			vp[nv] = &ve[nv];
			nv++;
		}
		for (size_t i = 0; i < t->n_writers && nw < 79; i++) {
			if (t->writers[i]->node == my_id)
				continue;
			wi[nw] = *t->writers[i];
			wp[nw] = &wi[nw];
			nw++;
		}
		msce__writer_info__init(&wi[nw]);
		wi[nw].node = my_id;
		wi[nw].writer = w;
		wi[nw].born = born;
		wp[nw] = &wi[nw];
		nw++;
		for (size_t i = 0; i < t->n_members && nm < 80; i++)
			members[nm++] = t->members[i];
		connected[0] = victim;
		if (t->digest.len == 32)
			memcpy(digest, t->digest.data, 32);
		st.node = my_id;
		st.n_vv = nv;
		st.vv = vp;
		st.digest.data = digest;
		st.digest.len = 32;
		st.hw = t->hw;
		st.time_ms = now_ms();
		st.n_connected = 1;
		st.connected = connected;
		st.writer = w;
		st.born = born;
		st.n_members = nm;
		st.members = members;
		st.n_writers = nw;
		st.writers = wp;
		st.settled = 1;
		Msce__NodeStatus rs;
		Msce__SignedStatus ss[2], *ssp[2] = {&ss[0], &ss[1]};
		uint8_t *blob[2] = {NULL, NULL}, sig[2][SEG_SIG_LEN];
		g.n_statuses = 1;
		g.statuses = ssp;
		if (relay_node != 0 && z_relay != NULL) {
			/* The target's own view of relay_node (its gossip
			 * carries it), its hw raised so that it wins, holding
			 * what the target holds now, with its digest; signed
			 * by us, as relay_node's key is not ours. */
			rs = *z_relay;
			rs.hw = z_relay->hw + ((uint64_t)3600000 << 16);
			rs.time_ms = now_ms();
			rs.n_vv = z_st_last->n_vv;
			rs.vv = z_st_last->vv;
			rs.digest = z_st_last->digest;
			g.n_statuses = 2;
		}
		for (size_t i = 0; i < g.n_statuses; i++) {
			const Msce__NodeStatus *x = i == 0 ? stp : &rs;
			size_t len = msce__node_status__get_packed_size(x);
			if ((blob[i] = malloc(len ? len : 1)) == NULL)
				return;
			msce__node_status__pack(x, blob[i]);
			status_sign(blob[i], len, sign_sk, sig[i]);
			msce__signed_status__init(&ss[i]);
			ss[i].status.data = blob[i];
			ss[i].status.len = len;
			ss[i].sig.data = sig[i];
			ss[i].sig.len = SEG_SIG_LEN;
		}
		m.msg_case = MSCE__PEER_MSG__MSG_GOSSIP;
		m.gossip = &g;
		int sent = send_peer_msg(fd, ch, &m);
		free(blob[0]);
		free(blob[1]);
		if (sent != NODE_OPENED) {
			say("closed at gossip");
			return;
		}
		if (!wrote && ctl_has("write")) {
			if (send_changes(fd, ch, w, 1)) {
				say("closed while sending the change");
				return;
			}
			wrote = 1;
			say("backdated change sent as %u", w);
		}
	}
	say("zombie done");
}

static int run(void)
{
	Msce__PeerMsg m = MSCE__PEER_MSG__INIT;
	Msce__Hello h = MSCE__HELLO__INIT;
	Msce__WriterInfo wi = MSCE__WRITER_INFO__INIT, *wip = &wi;
	struct noise_keypair kp;
	struct channel ch;
	struct channel_buf msg1 = {0};
	uint8_t lsk[32], lpk[32], spk[SEG_PK_LEN];
	struct err e;
	int fd, status = EXIT_SETUP;

	/* The center's origin signing key, derived from its link key. */
	if (keyfile_load_secret(o.key_path, lsk, lpk, &e)) {
		say("%s", e.msg);
		return EXIT_SETUP;
	}
	seg_keypair_from_link(lsk, spk, sign_sk);
	sodium_memzero(lsk, sizeof lsk);
	if (load_key(&kp, 0))
		return EXIT_SETUP;
	fd = open_session(&ch, &kp, 0, &msg1, &status);
	if (fd < 0)
		goto out;
	say("session open as node %u", my_id);
	h.node = my_id;
	h.cluster = (char *)o.cluster;
	h.protocol = MSCE_PROTOCOL_VERSION;
	h.time_ms = now_ms();
	if (!strcmp(attack, "hello-writer")) {
		wi.node = victim;
		wi.writer = (inc << 16) | victim;
		wi.born = (uint64_t)((int64_t)now_ms() + delta_ms) << 16;
		h.n_writers = 1;
		h.writers = &wip;
	}
	m.msg_case = MSCE__PEER_MSG__MSG_HELLO;
	m.hello = &h;
	if (send_peer_msg(fd, &ch, &m) != NODE_OPENED) {
		say("closed at hello");
		goto done;
	}
	say("hello sent");
	if (!strcmp(attack, "snapwipe")) {
		snapwipe(fd, &ch);
	} else if (!strcmp(attack, "zombie")) {
		zombie(fd, &ch);
		status = EXIT_OK;
		goto done;
	} else if (!strcmp(attack, "changes")) {
		uint32_t i;

		for (i = 0; i < n_changes; i++) {
			uint32_t origin = (((inc + i) & 0xffff) << 16) | my_id;

			if (send_changes(fd, &ch, origin, 1)) {
				say("closed while sending changes (origin %u)",
				    origin);
				break;
			}
			/* Let the node apply (and answer) now and then. */
			if (n_changes > 1 && i % 16 == 15 &&
			    wait_close(fd, &ch, NULL, mono_ms() + 300) ==
				    NODE_CLOSED) {
				say("node closed the connection after %u", i + 1);
				i++;
				break;
			}
		}
		say("changes sent %u", i);
	}
	pump(fd, &ch, dur_ms);
	status = EXIT_OK;
done:
	close(fd);
out:
	channel_destroy(&ch);
	channel_buf_free(&msg1);
	noise_keypair_destroy(&kp);
	return status;
}

int main(int argc, char **argv)
{
	const char *target = NULL, *server_key = NULL;
	struct err e;

	mode_name = "insider";
	o.timeout_ms = 10000;
	for (int a = 1; a + 1 < argc; a += 2) {
		const char *k = argv[a], *v = argv[a + 1];

		if (!strcmp(k, "--target"))
			target = v;
		else if (!strcmp(k, "--cluster"))
			o.cluster = v;
		else if (!strcmp(k, "--server-key"))
			server_key = v;
		else if (!strcmp(k, "--key"))
			o.key_path = v;
		else if (!strcmp(k, "--id"))
			my_id = (uint32_t)strtoul(v, NULL, 10);
		else if (!strcmp(k, "--attack"))
			attack = v;
		else if (!strcmp(k, "--victim"))
			victim = (uint32_t)strtoul(v, NULL, 10);
		else if (!strcmp(k, "--inc"))
			inc = (uint32_t)strtoul(v, NULL, 0);
		else if (!strcmp(k, "--n"))
			n_changes = (uint32_t)strtoul(v, NULL, 10);
		else if (!strcmp(k, "--delta-ms"))
			delta_ms = strtoll(v, NULL, 10);
		else if (!strcmp(k, "--coll"))
			coll = v;
		else if (!strcmp(k, "--rkey"))
			rkey = v;
		else if (!strcmp(k, "--val"))
			fval = v;
		else if (!strcmp(k, "--del"))
			op_del = (uint32_t)atoi(v);
		else if (!strcmp(k, "--snap-hold"))
			snap_hold = atoi(v);
		else if (!strcmp(k, "--relay"))
			relay_node = (uint32_t)strtoul(v, NULL, 10);
		else if (!strcmp(k, "--ctl"))
			ctl_dir = v;
		else if (!strcmp(k, "--dur-ms"))
			dur_ms = atoi(v);
		else if (!strcmp(k, "--timeout-ms"))
			o.timeout_ms = atoi(v);
		else {
			fprintf(stderr, "msce-insider: unknown option %s\n", k);
			return EXIT_SETUP;
		}
	}
	if (!target || !o.cluster || !server_key || !o.key_path ||
	    (strcmp(attack, "snapwipe") && strcmp(attack, "hello-writer") &&
	     strcmp(attack, "changes") && strcmp(attack, "zombie")) ||
	    o.timeout_ms <= 0 || dur_ms < 0 || n_changes > 1000) {
		fprintf(stderr,
			"usage: msce-insider --target HOST:PORT --cluster NAME "
			"--server-key B64 --key CENTER.key --id N --attack "
			"snapwipe|hello-writer|changes [options]\n");
		return EXIT_SETUP;
	}
	if (config_parse_addr(target, o.host, sizeof o.host, &o.port, &e) ||
	    key_from_base64(server_key, o.server_key, &e)) {
		fprintf(stderr, "msce-insider: %s\n", e.msg);
		return EXIT_SETUP;
	}
	if (sodium_init() < 0)
		return EXIT_SETUP;
	signal(SIGPIPE, SIG_IGN);
	probe_on_message = on_msg;
	/* The handshake and each send are bounded by this deadline (pump
	 * moves it past each of its reads); the reading after the attack
	 * by --dur-ms. */
	o.deadline = mono_ms() + (uint64_t)o.timeout_ms;
	return run();
}
