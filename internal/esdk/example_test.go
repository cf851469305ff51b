package esdk_test

import (
	"fmt"
	"log"

	"github.com/das-mysql/das/internal/esdk"
)

// Sealing a DAS record: DAS's keyring shape and its default suite 0x0378,
// with one signing key reused across records.
func Example() {
	dataKey := make([]byte, 32) // in DAS: the plaintext of a KMS data key
	k := esdk.Keyring{Namespace: "BC", Name: "DataKey", Key: dataKey}
	signer, err := esdk.GenerateSigningKey(nil)
	if err != nil {
		log.Fatal(err)
	}
	msg, err := esdk.Encrypt(k, []byte(`{"type":"DatabaseActivityMonitoringRecord"}`), esdk.EncryptOptions{SigningKey: signer})
	if err != nil {
		log.Fatal(err)
	}
	m, err := esdk.Decrypt(k, msg, esdk.DecryptOptions{MaxEncryptedDataKeys: 1})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(m.Suite, m.Version, string(m.Plaintext))
	// Output: AES_256_GCM_IV12_TAG16_HKDF_SHA384_ECDSA_P384 1 {"type":"DatabaseActivityMonitoringRecord"}
}
