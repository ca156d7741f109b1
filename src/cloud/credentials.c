/* cloud/credentials.c - the AWS tools' credentials chain: the environment,
 * the shared credentials file, the config file (bulkup/s3.h says the
 * order). The files are INI: "[section]", "key = value", comments from
 * '#' or ';' at a line's start; indented lines (a nested block such as
 * "s3 =" followed by its settings) are skipped.
 *
 * Messages name variables, files and profiles; never a key. */
#include "cloud/cloud.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <strings.h>

void bulkup_s3_credentials_options_init(bulkup_s3_credentials_options *opt) {
  memset(opt, 0, sizeof *opt);
  opt->provider = BULKUP_S3_AWS;
}

static void bk_wipe(char *s) {
  if (s) {
    OPENSSL_cleanse(s, strlen(s));
    bk_free(s);
  }
}

void bulkup_s3_credentials_free(bulkup_s3_credentials *c) {
  if (!c)
    return;
  bk_free(c->access_key_id);
  bk_wipe(c->secret_access_key);
  bk_wipe(c->session_token);
  bk_free(c->region);
  bk_free(c->source);
  bk_free(c);
}

static const char *bk_env(const char *name) {
  const char *v = getenv(name);
  return v && *v ? v : NULL;
}

/* What one file's section held. */
typedef struct bk_ini_found {
  bool file_exists;
  bool section_found;
  char *key_id, *secret, *token, *region;
} bk_ini_found;

static void bk_ini_found_free(bk_ini_found *f) {
  bk_free(f->key_id);
  bk_wipe(f->secret);
  bk_wipe(f->token);
  bk_free(f->region);
  memset(f, 0, sizeof *f);
}

static char *bk_trim(char *s) {
  while (*s == ' ' || *s == '\t')
    s++;
  size_t n = strlen(s);
  while (n && isspace((unsigned char)s[n - 1]))
    s[--n] = '\0';
  return s;
}

/* Read section `want` ("default", "profile NAME") of an INI file. A
 * section named more than once: the later keys win. Returns false when
 * out of memory. */
static bool bk_ini_read(const char *path, const char *want, const char *alt,
                        bk_ini_found *f) {
  FILE *fp = fopen(path, "r");
  if (!fp)
    return true;
  f->file_exists = true;
  char line[4096];
  bool in = false, ok = true;
  while (ok && fgets(line, sizeof line, fp)) {
    if (line[0] == ' ' || line[0] == '\t')
      continue; /* nested settings */
    char *l = bk_trim(line);
    if (!*l || *l == '#' || *l == ';')
      continue;
    if (*l == '[') {
      char *e = strchr(l, ']');
      if (!e)
        continue;
      *e = '\0';
      char *name = bk_trim(l + 1);
      /* "profile   x" is "profile x" */
      char norm[512];
      if (strncmp(name, "profile", 7) == 0 && (name[7] == ' ' || name[7] == '\t'))
        snprintf(norm, sizeof norm, "profile %s", bk_trim(name + 8));
      else
        snprintf(norm, sizeof norm, "%s", name);
      in = strcmp(norm, want) == 0 || (alt && strcmp(norm, alt) == 0);
      if (in)
        f->section_found = true;
      continue;
    }
    if (!in)
      continue;
    char *eq = strchr(l, '=');
    if (!eq)
      continue;
    *eq = '\0';
    char *k = bk_trim(l), *v = bk_trim(eq + 1);
    char **slot = NULL;
    if (strcasecmp(k, "aws_access_key_id") == 0)
      slot = &f->key_id;
    else if (strcasecmp(k, "aws_secret_access_key") == 0)
      slot = &f->secret;
    else if (strcasecmp(k, "aws_session_token") == 0)
      slot = &f->token;
    else if (strcasecmp(k, "region") == 0)
      slot = &f->region;
    if (slot && *v) {
      bk_wipe(*slot);
      *slot = bk_strdup(v);
      ok = *slot != NULL;
    }
  }
  OPENSSL_cleanse(line, sizeof line);
  fclose(fp);
  return ok;
}

/* A path: the variable's value, else ~/.aws/NAME. NULL when neither (no
 * HOME) or out of memory. */
static char *bk_aws_file(const char *var, const char *name) {
  const char *v = bk_env(var);
  if (v)
    return bk_strdup(v);
  const char *home = bk_env("HOME");
  if (!home)
    return NULL;
  size_t n = strlen(home) + strlen(name) + 8;
  char *p = bk_malloc(n);
  if (p)
    snprintf(p, n, "%s/.aws/%s", home, name);
  return p;
}

static const char *bk_file_state(const char *path, const bk_ini_found *f) {
  if (!path)
    return "(no HOME)";
  if (!f->file_exists)
    return "no such file";
  if (!f->section_found)
    return "no such profile";
  return "no keys in the profile";
}

bulkup_err bulkup_s3_credentials_load(bulkup_s3_credentials **out,
                                      const bulkup_s3_credentials_options *opt) {
  if (!out)
    return bk_error(BULKUP_EINVAL, "credentials: no output");
  *out = NULL;
  bulkup_s3_credentials_options def;
  if (!opt) {
    bulkup_s3_credentials_options_init(&def);
    opt = &def;
  }
  bool gcs = opt->provider == BULKUP_S3_GCS;
  const char *profile = opt->profile && *opt->profile ? opt->profile
                                                      : bk_env("AWS_PROFILE");
  bool chosen = profile != NULL;
  if (!profile)
    profile = "default";
  const char *id_var = gcs ? "GOOG_ACCESS_KEY_ID" : "AWS_ACCESS_KEY_ID";
  const char *secret_var =
      gcs ? "GOOG_SECRET_ACCESS_KEY" : "AWS_SECRET_ACCESS_KEY";

  bulkup_s3_credentials *c = bk_calloc(1, sizeof *c);
  if (!c)
    return bk_error(BULKUP_ENOMEM, "credentials: out of memory");
  char want[512], alt[512];
  snprintf(want, sizeof want, "profile %s", profile);
  snprintf(alt, sizeof alt, "%s", profile);
  char *cred_path = bk_aws_file("AWS_SHARED_CREDENTIALS_FILE", "credentials");
  char *conf_path = bk_aws_file("AWS_CONFIG_FILE", "config");
  bk_ini_found fc = {0}, fk = {0};
  bulkup_err rc = BULKUP_OK;
  bool ok = true;
  /* The config file, for the region at least. Its default profile is
   * [default]; others [profile NAME]. */
  if (conf_path)
    ok = bk_ini_read(conf_path, strcmp(profile, "default") == 0 ? "default"
                                                                : want,
                     strcmp(profile, "default") == 0 ? "profile default" : NULL,
                     &fc);
  const char *env_id = bk_env(id_var), *env_secret = bk_env(secret_var);
  if (!ok) {
    rc = bk_error(BULKUP_ENOMEM, "credentials: out of memory");
  } else if (!chosen && (env_id || env_secret)) {
    if (!env_id || !env_secret) {
      rc = bk_error(BULKUP_EINVAL, "credentials: %s is set but %s is not",
                    env_id ? id_var : secret_var, env_id ? secret_var : id_var);
    } else {
      c->access_key_id = bk_strdup(env_id);
      c->secret_access_key = bk_strdup(env_secret);
      const char *tok = gcs ? NULL : bk_env("AWS_SESSION_TOKEN");
      if (tok)
        c->session_token = bk_strdup(tok);
      char src[128];
      snprintf(src, sizeof src, "the environment (%s)", id_var);
      c->source = bk_strdup(src);
      if (!c->access_key_id || !c->secret_access_key || !c->source ||
          (tok && !c->session_token))
        rc = bk_error(BULKUP_ENOMEM, "credentials: out of memory");
    }
  } else {
    /* The shared credentials file names profiles bare: [NAME]. */
    if (cred_path)
      ok = bk_ini_read(cred_path, alt, NULL, &fk);
    const bk_ini_found *use = NULL;
    const char *from = NULL;
    if (!ok) {
      rc = bk_error(BULKUP_ENOMEM, "credentials: out of memory");
    } else if (fk.key_id && fk.secret) {
      use = &fk;
      from = cred_path;
    } else if (fc.key_id && fc.secret) {
      use = &fc;
      from = conf_path;
    } else if (fk.key_id || fk.secret || fc.key_id || fc.secret) {
      rc = bk_error(BULKUP_EINVAL, "credentials: profile \"%s\" in %s has "
                    "only one of aws_access_key_id and aws_secret_access_key",
                    profile, (fk.key_id || fk.secret) ? cred_path : conf_path);
    } else {
      char env_part[160] = "";
      if (!chosen)
        snprintf(env_part, sizeof env_part, "%s and %s in the environment, ",
                 id_var, secret_var);
      rc = bk_error(BULKUP_EINVAL, "no %s credentials found: looked for %s"
                    "profile \"%s\" in the shared credentials file %s (%s; "
                    "AWS_SHARED_CREDENTIALS_FILE) and in the config file %s "
                    "(%s; AWS_CONFIG_FILE)%s",
                    gcs ? "GCS HMAC" : "AWS", env_part, profile,
                    cred_path ? cred_path : "~/.aws/credentials",
                    bk_file_state(cred_path, &fk),
                    conf_path ? conf_path : "~/.aws/config",
                    bk_file_state(conf_path, &fc),
                    chosen ? "" : "; set AWS_PROFILE or --profile for "
                                  "another profile");
    }
    if (use) {
      c->access_key_id = bk_strdup(use->key_id);
      c->secret_access_key = bk_strdup(use->secret);
      if (use->token)
        c->session_token = bk_strdup(use->token);
      size_t n = strlen(from) + strlen(profile) + 32;
      c->source = bk_malloc(n);
      if (c->source)
        snprintf(c->source, n, "%s, profile \"%s\"", from, profile);
      if (!c->access_key_id || !c->secret_access_key || !c->source ||
          (use->token && !c->session_token))
        rc = bk_error(BULKUP_ENOMEM, "credentials: out of memory");
    }
  }
  if (rc == BULKUP_OK && !gcs) {
    const char *r = bk_env("AWS_REGION");
    if (!r)
      r = bk_env("AWS_DEFAULT_REGION");
    if (!r)
      r = fc.region;
    if (r && !(c->region = bk_strdup(r)))
      rc = bk_error(BULKUP_ENOMEM, "credentials: out of memory");
  }
  bk_ini_found_free(&fc);
  bk_ini_found_free(&fk);
  bk_free(cred_path);
  bk_free(conf_path);
  if (rc != BULKUP_OK) {
    bulkup_s3_credentials_free(c);
    return rc;
  }
  *out = c;
  return BULKUP_OK;
}
