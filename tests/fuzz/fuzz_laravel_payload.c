/* libFuzzer harness: messages of Laravel's redis broadcaster, which the
 * relay's ingest turns into events with relay/ingest_payload.c's
 * ingest_parse.
 *
 * The input is the topic the message was PUBLISHed to, a newline, and the
 * payload. It is parsed under four pairs of Laravel and Herald prefixes:
 * the defaults of Laravel 8 to 12 and of Laravel 13, an empty Laravel
 * prefix, and both prefixes empty. A delivered message must come from a
 * topic under the Laravel prefix and outside Herald's own, name a valid
 * channel, keep the limits, and carry the payload's `data` without its
 * `socket` key. It is then rendered as the ingest publishes it and checked
 * like a trigger (fuzz_relay.h). The first line of the input is also tried
 * as a prefix for ingest_pattern.
 *
 * The payload goes through trigger_parse_json_object, which rejects
 * ill-formed UTF-8, so every rendered frame must be valid UTF-8. */
#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "config.h"
#include "fuzz_relay.h"
#include "fuzz_util.h"
#include "ingest_payload.h"
#include "strbuf.h"
#include "trigger.h"

/* Size of the `details` buffer of relay/ingest.c. */
#define FUZZ_DETAILS_MAX 512

static const char config_json[] =
    "{\"apps\":[{\"id\":\"" FUZZ_RELAY_APP_ID "\",\"key\":\"app-key\",\"secret\":\"app-secret\"}]}";

static const struct {
    const char *laravel;
    const char *herald;
} prefixes[] = {
    { "laravel_database_", FUZZ_RELAY_PREFIX },
    { "laravel-database-", FUZZ_RELAY_PREFIX },
    { "", FUZZ_RELAY_PREFIX },
    { "", "" },
};

static struct herald_config config;
static const struct app_config *app;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char err[CONFIG_ERROR_MAX];
    if (config_load_string(&config, config_json, err, sizeof err) != 0)
        fuzz_fail("the harness configuration is invalid: %s", err);
    app = config_find_app_by_id(&config, FUZZ_RELAY_APP_ID);
    return 0;
}

/* Returns the payload's `data` without its `socket` key, parsed on its own,
 * or NULL when it is neither an object nor an array. */
static json_object *expected_data(const char *payload, size_t len)
{
    json_tokener *tok = json_tokener_new();
    if (!tok)
        fuzz_fail("out of memory creating a JSON parser");
    json_object *root = json_tokener_parse_ex(tok, payload, (int)len);
    json_tokener_free(tok);

    json_object *data = NULL;
    if (json_object_object_get_ex(root, "data", &data) &&
        (json_object_is_type(data, json_type_object) || json_object_is_type(data, json_type_array))) {
        json_object_get(data);
        if (json_object_is_type(data, json_type_object))
            json_object_object_del(data, "socket");
    } else {
        data = NULL;
    }
    json_object_put(root);
    return data;
}

static void check_delivered(const struct ingest_event *event, const char *topic, size_t topic_len,
                            const char *payload, size_t payload_len, const char *laravel_prefix,
                            const char *herald_prefix)
{
    size_t prefix_len = strlen(laravel_prefix);
    FUZZ_CHECK(topic_len >= prefix_len && memcmp(topic, laravel_prefix, prefix_len) == 0 &&
                   event->channel == topic + prefix_len,
               "delivered from topic %s outside the prefix \"%s\"", topic, laravel_prefix);
    if (herald_prefix[0])
        FUZZ_CHECK(strncmp(topic, herald_prefix, strlen(herald_prefix)) != 0,
                   "delivered from Herald's own topic %s", topic);

    const char *channel = event->channel;
    FUZZ_CHECK(channel_name_valid(channel, strlen(channel), (size_t)app->max_channel_name_length) &&
                   channel_classify(channel).type != CHANNEL_RESERVED,
               "delivered to the channel %s", channel);

    size_t name_len = strlen(event->name);
    FUZZ_CHECK(name_len > 0 && name_len <= (size_t)app->max_event_name_length,
               "delivered an event name of %zu bytes", name_len);
    FUZZ_CHECK(event->data && event->data_len <= (size_t)app->max_event_payload_bytes,
               "delivered %zu bytes of data", event->data_len);
    if (event->exclude)
        FUZZ_CHECK(fuzz_socket_id_valid(event->exclude), "excludes the socket_id %s",
                   event->exclude);

    /* An object or array `data` arrives as its JSON text, without `socket`. */
    json_object *expected = expected_data(payload, payload_len);
    if (expected) {
        json_tokener *tok = json_tokener_new();
        if (!tok)
            fuzz_fail("out of memory creating a JSON parser");
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
        json_object *delivered = json_tokener_parse_ex(tok, event->data, (int)event->data_len);
        json_tokener_free(tok);
        FUZZ_CHECK(delivered && json_object_equal(expected, delivered),
                   "delivered data %.*s differs from the payload's data", (int)event->data_len,
                   event->data);
        json_object_put(delivered);
        json_object_put(expected);
    }
}

static void check_parse(const char *topic, size_t topic_len, const char *payload,
                        size_t payload_len, const char *laravel_prefix, const char *herald_prefix)
{
    struct ingest_event event;
    char details[FUZZ_DETAILS_MAX] = "";
    enum ingest_skip skip = ingest_parse(&event, topic, topic_len, payload, payload_len,
                                         laravel_prefix, herald_prefix, app, details,
                                         sizeof details);
    FUZZ_CHECK(skip >= INGEST_DELIVER && skip < INGEST_SKIP_COUNT, "ingest_parse returned %d",
               (int)skip);
    if (skip != INGEST_DELIVER) {
        FUZZ_CHECK(details[0] && fuzz_utf8_valid(details, strlen(details)),
                   "skipped as %s without a UTF-8 reason: %s", ingest_skip_name(skip), details);
        return;
    }

    check_delivered(&event, topic, topic_len, payload, payload_len, laravel_prefix,
                    herald_prefix);

    /* relay/ingest.c publishes it as a trigger of one channel. */
    struct trigger_event trigger = {
        .name = event.name,
        .data = event.data,
        .data_len = event.data_len,
        .socket_id = event.exclude,
    };
    fuzz_check_rendered_event(&trigger, event.channel, true);
    ingest_event_free(&event);
}

/* Checks that the pattern is `prefix` with * ? [ ] \ escaped, then *. */
static void check_pattern(const char *prefix)
{
    struct strbuf pattern;
    strbuf_init(&pattern);
    ingest_pattern(&pattern, prefix);

    const char *p = pattern.data;
    for (const char *c = prefix; *c; c++) {
        if (strchr("*?[]\\", *c)) {
            FUZZ_CHECK(*p == '\\', "pattern %s leaves %c unescaped", pattern.data, *c);
            p++;
        }
        FUZZ_CHECK(*p == *c, "pattern %s does not spell the prefix", pattern.data);
        p++;
    }
    FUZZ_CHECK(p[0] == '*' && p[1] == '\0', "pattern %s does not end in one *", pattern.data);
    strbuf_free(&pattern);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *input = (const char *)data;
    const char *newline = memchr(input, '\n', size);
    if (!newline)
        return 0;

    /* The subscriber hands over the topic with a terminating NUL. */
    size_t topic_len = (size_t)(newline - input);
    char *topic = malloc(topic_len + 1);
    if (!topic)
        fuzz_fail("out of memory copying the topic");
    memcpy(topic, input, topic_len);
    topic[topic_len] = '\0';
    const char *payload = newline + 1;
    size_t payload_len = size - topic_len - 1;

    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
        check_parse(topic, topic_len, payload, payload_len, prefixes[i].laravel,
                    prefixes[i].herald);
    check_pattern(topic);

    free(topic);
    return 0;
}
