// Package event holds the activity event model: one Aurora MySQL
// databaseActivityEventList item, its exact DAS JSON form, and the decrypted
// payload envelope (databaseActivityEvents object).
package event
