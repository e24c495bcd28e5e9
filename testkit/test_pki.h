// A small PKI for the TLS tests, made with OpenSSL: a CA, certificates it signs (for names,
// for a client, already expired) and one from another CA, written as PEM files.
#pragma once

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <string>
#include <vector>

namespace boa::testing {

class TestPki {
 public:
  // A key (EC P-256) and certificate as PEM files DIR/NAME.key and DIR/NAME.crt.
  struct Files {
    std::string cert, key;
  };

  explicit TestPki(std::string dir) : dir_(std::move(dir)) { ca_ = Make("ca", "boa test CA", {}, nullptr, true, -3600, 86400); }
  ~TestPki() {
    for (auto& i : issued_) {
      X509_free(i.cert);
      EVP_PKEY_free(i.key);
    }
  }
  const Files& ca() const { return ca_.files; }
  // Signed by this CA, valid from an hour ago for `valid_seconds` (negative: expired), for the
  // DNS names and IP addresses in `sans` ("DNS:localhost", "IP:127.0.0.1").
  Files Issue(const std::string& name, const std::string& cn, const std::vector<std::string>& sans,
              long valid_seconds = 86400) {
    return Make(name, cn, sans, &ca_, false, valid_seconds < 0 ? -7200 : -3600, valid_seconds < 0 ? -3600 : valid_seconds)
        .files;
  }
  // A CA of its own, and a certificate it signs (a PKI the client does not trust).
  Files IssueByOtherCa(const std::string& name, const std::string& cn, const std::vector<std::string>& sans) {
    Issued other = Make(name + "-ca", "other CA", {}, nullptr, true, -3600, 86400);
    return Make(name, cn, sans, &other, false, -3600, 86400).files;
  }

 private:
  struct Issued {
    X509* cert = nullptr;
    EVP_PKEY* key = nullptr;
    Files files;
  };

  Issued Make(const std::string& name, const std::string& cn, const std::vector<std::string>& sans, const Issued* issuer,
              bool is_ca, long not_before, long not_after) {
    Issued i;
    i.key = EVP_EC_gen("P-256");
    i.cert = X509_new();
    X509_set_version(i.cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(i.cert), static_cast<long>(++serial_));
    X509_gmtime_adj(X509_getm_notBefore(i.cert), not_before);
    X509_gmtime_adj(X509_getm_notAfter(i.cert), not_after);
    X509_set_pubkey(i.cert, i.key);
    X509_NAME* subject = X509_get_subject_name(i.cert);
    X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
    X509_set_issuer_name(i.cert, issuer ? X509_get_subject_name(issuer->cert) : subject);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer ? issuer->cert : i.cert, i.cert, nullptr, nullptr, 0);
    AddExtension(&ctx, i.cert, NID_basic_constraints, is_ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
    if (is_ca) AddExtension(&ctx, i.cert, NID_key_usage, "critical,keyCertSign,cRLSign");
    std::string san;
    for (const std::string& s : sans) san += (san.empty() ? "" : ",") + s;
    if (!san.empty()) AddExtension(&ctx, i.cert, NID_subject_alt_name, san.c_str());
    X509_sign(i.cert, issuer ? issuer->key : i.key, EVP_sha256());
    i.files = {dir_ + "/" + name + ".crt", dir_ + "/" + name + ".key"};
    FILE* f = std::fopen(i.files.cert.c_str(), "w");
    PEM_write_X509(f, i.cert);
    std::fclose(f);
    f = std::fopen(i.files.key.c_str(), "w");
    PEM_write_PrivateKey(f, i.key, nullptr, nullptr, 0, nullptr, nullptr);
    std::fclose(f);
    issued_.push_back(i);
    return i;
  }
  static void AddExtension(X509V3_CTX* ctx, X509* cert, int nid, const char* value) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, ctx, nid, value);
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
  }

  std::string dir_;
  long serial_ = 0;
  std::vector<Issued> issued_;
  Issued ca_;
};

}  // namespace boa::testing
