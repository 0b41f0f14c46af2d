/* vxml_int.h: the interpreter's private types, shared by telserver/vxml_*.c
 * and nothing else. */
#ifndef VXML_INT_H
#define VXML_INT_H

#include <stdarg.h>

#include <duktape.h>
#include <libxml/tree.h>

#include "vxml.h"
#include "vxml_grammar.h"

#define VXML_MAX_DIGITS		64
#define VXML_LOOP_LIMIT		10000	/* FIA iterations without waiting */
#define VXML_NOINPUT_LIMIT	10	/* noinputs in a row: nobody answers */
#define VXML_GCACHE		16	/* srcexpr grammars kept per session */

/* A resource fetched together with its document (<script src>, <grammar
 * src>), so that executable content never has to wait for a fetch. */
struct vxml_res {
	xmlNode		*node;
	char		*url;
	unsigned	 fetch_id;
	int		 status;	/* HTTP status; 0 transport error; -1 pending */
	char		*body;
	size_t		 len;
};

struct vxml_doc {
	int		 refs;
	xmlDoc		*xml;
	xmlNode		*root;		/* <vxml> */
	char		*url;		/* absolute, no fragment */
	char		*app_url;	/* application= resolved, or NULL */
	struct vxml_res	*res;
	size_t		 nres;
	size_t		 pending;	/* resources still being fetched */
};

/* A recording kept for <submit namelist> (a multipart file part). */
struct vxml_audio {
	void		*data;
	size_t		 len;
	char		*type;
};

/* An event counter: one per event name prefix seen. */
struct vxml_count {
	struct vxml_count *next;
	char		*name;
	int		 n;
};

enum vxml_item_kind {
	ITEM_BLOCK, ITEM_FIELD, ITEM_INITIAL, ITEM_MENU, ITEM_SUBDIALOG,
	ITEM_RECORD, ITEM_TRANSFER, ITEM_OBJECT
};

struct vxml_item {
	xmlNode		*node;
	enum vxml_item_kind kind;
	char		*var;		/* the form item variable */
	int		 prompt_count;
	struct vxml_count *counts;
	int		 just_filled;
};

struct vxml_dialog {
	xmlNode		*node;		/* <form> or <menu>; NULL: none */
	struct vxml_item *items;
	size_t		 nitems;
	struct vxml_count *counts;	/* form-level events */
	int		 cur;		/* item being visited, -1 none */
	int		 next_item;	/* from <goto nextitem>, -1 none */
	int		 skip_prompts;	/* the last iteration ended in a catch without <reprompt> */
	int		 in_filled;	/* executing form-level <filled> */
};

/* An execution context: the main one, or one per running <subdialog>. */
struct vxml_ctx {
	struct vxml_ctx	*parent;
	struct vxml_doc	*doc;
	struct vxml_doc	*app;		/* application root, or NULL */
	struct vxml_dialog dlg;
	int		 scope_key;	/* stash slot holding this context's scopes */
	xmlNode		*caller;	/* in parent: the <subdialog> */
};

/* What executable content asked for when it stopped. */
enum vxml_flow {
	FLOW_NEXT = 0,		/* keep going */
	FLOW_THROW,		/* s->ev_name is pending */
	FLOW_GOTO,		/* s->tr is pending */
	FLOW_EXIT,
	FLOW_RETURN,
	FLOW_DISCONNECT
};

enum vxml_tr_kind { TR_NONE, TR_DIALOG, TR_ITEM, TR_DOC };

/* A pending transition (goto, submit, choice, subdialog fetch). */
struct vxml_tr {
	enum vxml_tr_kind kind;
	char		*url;		/* TR_DOC: absolute, no fragment */
	char		*frag;		/* dialog id or NULL */
	char		*item;		/* TR_ITEM */
	int		 post;
	int		 submit;	/* a <submit>: always a fresh document */
	xmlNode		*node;		/* the element that asked, for error reports */
	char		*enctype;
	struct vxml_param *params;
	size_t		 nparams;
};

enum vxml_wait {
	WAIT_NONE,		/* running */
	WAIT_FETCH,		/* a document (and its resources) */
	WAIT_INPUT,		/* DTMF collection, prompts may be playing */
	WAIT_PROMPTS_END,	/* play out before ending */
	WAIT_PROMPTS_THEN,	/* play out before a transfer or record */
	WAIT_PROMPTS_DISC,	/* play out before <disconnect> hangs up */
	WAIT_GRAMMAR,		/* a <grammar srcexpr> before collecting */
	WAIT_TRANSFER,
	WAIT_RECORD,
	WAIT_DONE
};

enum vxml_fetch_for { FOR_DOC, FOR_APP, FOR_SUBDIALOG };

enum vxml_pend_kind {
	PEND_FETCH, PEND_PROMPTS, PEND_TIMER, PEND_DTMF, PEND_HANGUP,
	PEND_TRANSFER, PEND_RECORD
};

/* One answer or input from the platform, kept until the run loop takes it
 * (the platform may answer from inside the request). */
struct vxml_pend {
	struct vxml_pend	*next;
	enum vxml_pend_kind	 kind;
	unsigned		 id;
	int			 status;
	char			*error;
	char			*url;
	char			*body;
	size_t			 len;
	char			*type;		/* a recording's */
	char			 digit;
	int			 outcome;
	int			 duration_ms;
	struct vxml_record_res	 rec;
};

enum vxml_input_state { IN_PROMPTS, IN_NOINPUT, IN_INTERDIGIT, IN_TERM };

struct vxml_session {
	struct vxml_platform	 p;
	void			*arg;
	struct vxml_session_info info;
	char			*info_strs[7];

	duk_context		*js;
	struct vxml_ctx		*ctx;
	int			 next_scope_key;

	/* the run loop: platform answers only record; run() acts */
	int			 running;
	int			 started;
	enum vxml_wait		 wait;
	int			 iterations;
	int			 noinputs;	/* in a row, since a key */

	/* the pending event */
	char			*ev_name;
	char			*ev_msg;
	xmlNode			*ev_node;	/* where, for URL and line */
	int			 ev_depth;
	struct vxml_tr		 tr;
	char			*ev_url;	/* where, when not a node (a broken document) */
	int			 ev_line;
	char			*exit_json;	/* <exit> value */
	char			*ret_json;	/* <return> namelist object */
	char			*ret_event;	/* <return event>: thrown in the caller */
	char			*ret_msg;
	int			 disconnected;	/* <disconnect> or blind transfer */
	enum vxml_end		 end_how;	/* while the last prompts play */
	int			 reprompt;	/* <reprompt> executed in a handler */

	/* document fetching */
	unsigned		 fetch_id;	/* awaited document fetch */
	unsigned		 next_fetch_id;
	enum vxml_fetch_for	 fetch_for;
	struct vxml_doc		*loading;	/* parsed, waiting for resources */
	struct vxml_doc		*loading_app;
	char			*loading_frag;
	xmlNode			*subdialog;	/* <subdialog> being started */

	/* platform answers waiting for the run loop */
	struct vxml_pend	*pend_head, *pend_tail;

	/* input collection */
	enum vxml_input_state	 in_state;
	char			 digits[VXML_MAX_DIGITS + 1];	/* typeahead */
	size_t			 ndigits;
	char			 cur[VXML_MAX_DIGITS + 1];	/* this utterance */
	size_t			 ncur;
	struct vxml_interp	 match;		/* a complete match waiting for more */
	int			 match_idx;	/* its grammar, -1 none */
	struct vxml_interp	 taken;		/* the match being acted on */
	char			*taken_src;	/* its interpretation source */
	char			 termchar;	/* 0: none */
	int			 interdigit_ms, termtimeout_ms, timeout_ms;
	char			 propbuf[4][256];
	int			 propi;
	struct vxml_res		*gcache;	/* srcexpr grammars by URL */
	size_t			 ngcache;
	struct vxml_res		 gtmp;
	int			 bargein;	/* the queued prompts allow barge-in */
	int			 prompts_queued;
	int			 prompts_playing;
	int			 prompt_timeout_ms;	/* from the last <prompt timeout>, -1 none */
	struct vxml_grammar	**grammars;
	xmlNode			**gnodes;	/* the choice/option/grammar behind each */
	size_t			 ngrammars;
	int			 timer_on;
	int			 dtmf_off;	/* inputmodes excludes dtmf */
	int			 hungup;

	/* results */
	struct vxml_result_field *fields;
	size_t			 nfields;
	struct vxml_result_field *recs;		/* name -> URL, for the result */
	struct vxml_audio	*rec_audio;	/* the audio of each recs[i] */
	size_t			 nrecs;
	struct vxml_record_res	 rec_res;	/* the recording being handed in */
	void			*rec_data;
	char			*rec_type;
	int			 xfer_outcome;
	int			 xfer_ms;
};

/* vxml_doc.c */
struct vxml_doc	*vxml_doc_parse(const char *url, const char *buf, size_t len,
		    char *err, size_t errlen, int *errline);
void		 vxml_doc_ref(struct vxml_doc *d);
void		 vxml_doc_unref(struct vxml_doc *d);
char		*vxml_url_resolve(const char *base, const char *ref);
void		 vxml_url_split(const char *url, char **abs, char **frag);
xmlNode		*vxml_doc_dialog(struct vxml_doc *d, const char *id);
struct vxml_res	*vxml_doc_res(struct vxml_doc *d, xmlNode *n);
int		 vxml_is(const xmlNode *n, const char *name);
char		*vxml_attr(const xmlNode *n, const char *name);
int		 vxml_has_attr(const xmlNode *n, const char *name);
xmlNode		*vxml_first_elem(xmlNode *n);
xmlNode		*vxml_next_elem(xmlNode *n);
const char	*vxml_node_url(struct vxml_session *s, xmlNode *n);
#define VXML_TIME_MAX_MS	86400000	/* a day: longer than any call */
int		 vxml_time_ms(const char *v, int dflt);

/* vxml_script.c */
int		 vxml_js_init(struct vxml_session *s);
void		 vxml_js_free(struct vxml_session *s);
int		 vxml_js_new_context(struct vxml_session *s);
void		 vxml_js_use_context(struct vxml_session *s, int key);
void		 vxml_js_drop_context(struct vxml_session *s, int key);
void		 vxml_js_set_app(struct vxml_session *s, int fresh, int same_as_doc);
void		 vxml_js_push_scope(struct vxml_session *s, const char *name);
void		 vxml_js_pop_scope(struct vxml_session *s);
int		 vxml_js_depth(struct vxml_session *s);
void		 vxml_js_truncate(struct vxml_session *s, int depth);
int		 vxml_js_eval(struct vxml_session *s, const char *expr, xmlNode *where);
int		 vxml_js_eval_str(struct vxml_session *s, const char *expr, xmlNode *where, char **out);
int		 vxml_js_eval_bool(struct vxml_session *s, const char *expr, xmlNode *where, int *out);
int		 vxml_js_run(struct vxml_session *s, const char *code, xmlNode *where);
int		 vxml_js_declare(struct vxml_session *s, const char *name, const char *expr, xmlNode *where);
int		 vxml_js_declare_top(struct vxml_session *s, const char *name);
int		 vxml_js_assign(struct vxml_session *s, const char *name, const char *expr, xmlNode *where);
int		 vxml_js_assign_top(struct vxml_session *s, const char *name);
int		 vxml_js_is_defined(struct vxml_session *s, const char *name);
int		 vxml_js_defined_var(struct vxml_session *s, const char *name);
char		*vxml_js_var_json(struct vxml_session *s, const char *name);
char		*vxml_js_json_top(struct vxml_session *s);
void		 vxml_js_set_string(struct vxml_session *s, const char *name, const char *v);
void		 vxml_js_set_lastresult(struct vxml_session *s, const char *field,
		    const char *utterance, const char *interp_src);
int		 vxml_js_valid_name(const char *name);

/* vxml_event.c */
enum vxml_flow	 vxml_throw(struct vxml_session *s, const char *name, const char *msg, xmlNode *where);
enum vxml_flow	 vxml_throwf(struct vxml_session *s, const char *name, xmlNode *where,
		    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
enum vxml_flow	 vxml_handle_event(struct vxml_session *s);
void		 vxml_counts_free(struct vxml_count **c);

/* vxml_exec.c */
enum vxml_flow	 vxml_exec(struct vxml_session *s, xmlNode *parent);
enum vxml_flow	 vxml_exec_node(struct vxml_session *s, xmlNode *n);
void		 vxml_tr_clear(struct vxml_tr *t);
enum vxml_flow	 vxml_foreach(struct vxml_session *s, xmlNode *n,
		    enum vxml_flow (*body)(struct vxml_session *, xmlNode *, void *),
		    void *arg);
int		 vxml_tr_target(struct vxml_session *s, const char *target, struct vxml_tr *t);
int		 vxml_namelist_params(struct vxml_session *s, xmlNode *n, const char *list,
		    struct vxml_tr *t);
char		*vxml_interp_source(const struct vxml_interp *m);
char		*vxml_expr_or_attr(struct vxml_session *s, xmlNode *n, const char *attr,
		    const char *exprattr, int *err);

/* vxml_prompt.c */
enum vxml_flow	 vxml_prompt_queue(struct vxml_session *s, xmlNode *prompt, int bargein);
enum vxml_flow	 vxml_prompt_select(struct vxml_session *s, struct vxml_item *it);
void		 vxml_prompt_text(struct vxml_session *s, const char *text, int bargein);
int		 vxml_bargein_default(struct vxml_session *s);

/* vxml_input.c */
enum vxml_flow	 vxml_input_start(struct vxml_session *s, struct vxml_item *it);
void		 vxml_input_digit(struct vxml_session *s, char d);
void		 vxml_input_hangup(struct vxml_session *s);
void		 vxml_input_timer(struct vxml_session *s);
void		 vxml_input_prompts_done(struct vxml_session *s);
void		 vxml_input_clear(struct vxml_session *s);
void		 vxml_input_free(struct vxml_session *s);
int		 vxml_input_grammar_fetched(struct vxml_session *s, unsigned id,
		    int status, char **body, size_t len);
const char	*vxml_property(struct vxml_session *s, const char *name, const char *dflt);

/* vxml_fia.c */
void		 vxml_fia_step(struct vxml_session *s);
void		 vxml_dialog_leave(struct vxml_session *s);
enum vxml_flow	 vxml_dialog_enter(struct vxml_session *s, xmlNode *dialog);
void		 vxml_fia_filled(struct vxml_session *s, struct vxml_item *it);
void		 vxml_fia_input_done(struct vxml_session *s, enum vxml_flow f);
void		 vxml_fia_matched(struct vxml_session *s, int idx, struct vxml_interp *m);
void		 vxml_apply(struct vxml_session *s, enum vxml_flow f);
void		 vxml_disconnect_now(struct vxml_session *s);
struct vxml_item *vxml_item_by_node(struct vxml_session *s, xmlNode *n);
struct vxml_item *vxml_item_by_name(struct vxml_session *s, const char *name);
int		 vxml_fill_item(struct vxml_session *s, struct vxml_item *it);
void		 vxml_choice_taken(struct vxml_session *s, xmlNode *ch);

/* vxml_call.c */
enum vxml_flow	 vxml_subdialog_start(struct vxml_session *s, struct vxml_item *it);
enum vxml_flow	 vxml_transfer_start(struct vxml_session *s, struct vxml_item *it);
enum vxml_flow	 vxml_record_start(struct vxml_session *s, struct vxml_item *it);
void		 vxml_transfer_finish(struct vxml_session *s);
void		 vxml_record_finish(struct vxml_session *s);
void		 vxml_fia_prompts_played(struct vxml_session *s);

/* vxml_session.c */
void		 vxml_run(struct vxml_session *s);
void		 vxml_end(struct vxml_session *s, enum vxml_end how);
void		 vxml_fetch_doc(struct vxml_session *s, enum vxml_fetch_for why);
void		 vxml_doc_loaded(struct vxml_session *s);
void		 vxml_note_field(struct vxml_session *s, const char *name, char *json);
void		 vxml_log(struct vxml_session *s, const char *label, const char *fmt, ...)
		    __attribute__((format(printf, 3, 4)));
void		 vxml_subdialog_return(struct vxml_session *s);

#endif
