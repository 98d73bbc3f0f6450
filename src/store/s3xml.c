/*
 * s3xml: S3's XML answers through libxml2 (s3xml.h). The document is libxml2's tree;
 * an s3xml_node is one of its element nodes, handed out as an opaque pointer.
 *
 * DESIGN (threads): xmlInitParser runs once (pthread_once) before the first parse, as
 * libxml2 asks of threaded programs; after that each document belongs to one thread.
 * Safety: no network, no DTD (a document with one is refused), parse errors are not
 * printed, and libxml2's default depth and size limits stay on (no XML_PARSE_HUGE).
 */
#include "store/s3xml.h"

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <limits.h>
#include <pthread.h>
#include <string.h>

#include "base/xalloc.h"

struct s3xml {
    xmlDocPtr doc;
};

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void init_parser(void)
{
    xmlInitParser();
}

struct s3xml *s3xml_parse(const char *data, size_t len)
{
    int opts = XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_NOCDATA;
    struct s3xml *x;
    xmlDocPtr doc;

    if (!data || len == 0 || len > INT_MAX)
        return NULL;
    pthread_once(&init_once, init_parser);
    doc = xmlReadMemory(data, (int)len, NULL, NULL, opts);
    if (!doc)
        return NULL;
    if (doc->intSubset || doc->extSubset || !xmlDocGetRootElement(doc)) {
        xmlFreeDoc(doc);
        return NULL;
    }
    x = xmalloc(sizeof(*x));
    x->doc = doc;
    return x;
}

void s3xml_free(struct s3xml *x)
{
    if (x) {
        xmlFreeDoc(x->doc);
        free(x);
    }
}

static bool named(const xmlNode *n, const char *tag)
{
    return n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, tag) == 0;
}

const struct s3xml_node *s3xml_each(const struct s3xml *x, const char *tag,
                                    const struct s3xml_node *prev)
{
    const xmlNode *n;

    if (!x)
        return NULL;
    n = prev ? ((const xmlNode *)prev)->next : xmlDocGetRootElement(x->doc)->children;
    while (n && !named(n, tag))
        n = n->next;
    return (const struct s3xml_node *)n;
}

/* The first element named tag at or below n (depth first), else NULL. The tree is at
 * most libxml2's default depth limit (256) deep. */
static const xmlNode *find(const xmlNode *n, const char *tag)
{
    for (; n; n = n->next) {
        const xmlNode *hit;

        if (named(n, tag))
            return n;
        if (n->type == XML_ELEMENT_NODE && (hit = find(n->children, tag)))
            return hit;
    }
    return NULL;
}

bool s3xml_text(const struct s3xml *x, const struct s3xml_node *in, const char *tag,
                struct buf *out)
{
    const xmlNode *n;
    xmlChar *text;

    if (!x)
        return false;
    n = in ? find(((const xmlNode *)in)->children, tag) : find(xmlDocGetRootElement(x->doc), tag);
    if (!n)
        return false;
    text = xmlNodeGetContent(n);
    buf_reset(out);
    if (text)
        buf_adds(out, (const char *)text);
    xmlFree(text);
    return true;
}
