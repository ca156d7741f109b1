/*
 * image_group - the SDK's create_image_group through bulkup_api (the
 * Encord API of ENCORD_WIRE.md): the dataset, signed upload URLs, the
 * uploads, then an image group made from the files that were uploaded
 * (allow_failures), and its report.
 *
 *   image_group API_URL KEY_FILE DATASET TITLE FILE...
 *
 * API_URL is https://api.encord.com or a test server's; KEY_FILE an
 * Ed25519 private key (unencrypted OpenSSH from `ssh-keygen -t ed25519`,
 * or PEM PKCS#8 from `openssl genpkey -algorithm ed25519`), readable by
 * its owner only. Try it against the reference server: `bulkup serve
 * --authorized-keys KEY_FILE.pub` prints the API_URL and a DATASET.
 * Prints one "DATA_HASH  TITLE" line per data unit the API created, then
 * the upload report as JSON on standard error.
 * Exit status: 0 the group was created, 1 it was not, 2 bad usage.
 */
#include <bulkup.h>

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
  if (argc < 6) {
    fprintf(stderr, "usage: %s API_URL KEY_FILE DATASET TITLE FILE...\n",
            argv[0]);
    return 2;
  }

  bulkup_api_options ao;
  bulkup_api_options_init(&ao);
  ao.base_url = argv[1];
  ao.key_file = argv[2]; /* its key id is derived: bulkup_api_key_id */
  bulkup_api *api;
  if (bulkup_api_new(&api, &ao) != BULKUP_OK) {
    fprintf(stderr, "image_group: %s\n", bulkup_last_error_message());
    return 2;
  }

  /* The SDK's get_dataset: is the dataset there, may this key use it? */
  bulkup_dataset *ds = NULL;
  if (bulkup_api_get_dataset(api, argv[3], &ds) != BULKUP_OK) {
    fprintf(stderr, "image_group: %s\n", bulkup_last_error_message());
    bulkup_api_free(api);
    return 1;
  }
  fprintf(stderr, "# dataset '%s', key %s\n", bulkup_dataset_title(ds),
          bulkup_api_key_id(api));
  bulkup_dataset_free(ds);

  bulkup_workflow_options wo;
  bulkup_workflow_options_init(&wo);
  wo.dataset_hash = argv[3];
  wo.title = argv[4];
  wo.upload.workers = 4;
  /* The seed's CloudUploadSettings(max_retries=5, allow_failures=True):
   * the group is made from the successes; failures are in the report. */
  bulkup_cloud_upload_settings_set_max_retries(&wo.upload.cloud, 5);
  wo.upload.cloud.allow_failures = true;

  const char *const *paths = (const char *const *)&argv[5];
  size_t npaths = (size_t)(argc - 5);
  bulkup_image_group *group = NULL;
  bulkup_report *rep = NULL;
  bulkup_err rc =
      bulkup_create_image_group(api, &wo, paths, npaths, &group, &rep);

  if (rc == BULKUP_OK) {
    printf("# job %s: %zu data units\n", bulkup_image_group_process_hash(group),
           bulkup_image_group_count(group));
    for (size_t i = 0; i < bulkup_image_group_count(group); i++)
      printf("%s  %s\n", bulkup_image_group_data_hash(group, i),
             bulkup_image_group_title(group, i));
  } else {
    fprintf(stderr, "image_group: %s: %s\n", bulkup_err_name(rc),
            bulkup_last_error_message());
  }
  if (rep != NULL) {
    char *json = NULL;
    if (bulkup_report_to_json(rep, true, &json) == BULKUP_OK)
      fprintf(stderr, "%s\n", json);
    bulkup_free(json);
  }

  bulkup_image_group_free(group);
  bulkup_report_free(rep);
  bulkup_api_free(api);
  return rc == BULKUP_OK ? 0 : 1;
}
