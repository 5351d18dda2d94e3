#include "keys.h"

void keys_channel_topic(struct strbuf *out, const char *prefix, const char *app_id,
                        const char *channel)
{
    strbuf_appendf(out, "%sch:{%s:%s}", prefix, app_id, channel);
}

void keys_control_topic(struct strbuf *out, const char *prefix, const char *app_id)
{
    strbuf_appendf(out, "%sctl:{%s}", prefix, app_id);
}

void keys_cache(struct strbuf *out, const char *prefix, const char *app_id, const char *channel)
{
    strbuf_appendf(out, "%scache:{%s:%s}", prefix, app_id, channel);
}
